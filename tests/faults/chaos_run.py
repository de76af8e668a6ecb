"""A chaos run (issue 13, "done when"): worker processes on one state, hurt while they work.

    python -m tests.faults.chaos_run --backend sqlite --seconds 60 --kills 10 --out run.json

Starts a counting stub upstream (tests/stub_server.py) and ``--workers`` processes that
make requests to it through quotaflow on one state (a state directory, or a Redis this
script starts itself on a free port: ``redis-server --port N --save ''`` with an
append-only file unless ``--no-persist``, never the shared Redis). While they work it
SIGKILLs random workers (and starts them again), holds ``BEGIN EXCLUSIVE`` on
``state.db`` for ``--lock`` seconds (SQLite), or freezes its Redis with SIGSTOP for
``--freeze`` seconds and later SIGKILLs and restarts it (Redis). At the end it writes a
JSON summary:

With ``--headers x-requests`` the stub reports its own count in every answer
(``x-requests-used``/``-remaining``/``-last``) and the profile reads it, as with a
quota API: a ledger that lost its rows re-syncs to the API's count.

- ``calls``: requests the stub received; ``spent``: what the ledger counts (used plus
  reserved in flight, every ``stub`` row);
- ``requests``, ``outcomes``: what the workers saw; ``unexpected``: exceptions that are
  not the documented ones, with their tracebacks;
- ``late``: requests whose wall time, less the time their process was stalled (not
  running at all: each worker's heartbeat thread measures it, ``stalled`` in each
  record), passed their deadline: ``--timeout`` plus the documented state deadline
  (SQLite's busy wait, 2 s; a frozen or restarting Redis, 3.5 s) plus ``SLACK``
  (0.5 s); ``slowest`` (wall time) and ``most_stalled``.

The run's clock starts once every worker has finished a request, so the faults fall
while they work however long a loaded machine takes to start them.

Each worker appends one JSON line per finished request, flushed, so a SIGKILL loses at
most the request it was making. Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

# The documented deadlines of the state (docs/reliability.md rows 13 and 16): one busy
# wait on a locked state.db; with Redis frozen, one SOCKET_TIMEOUT per guard (the cache
# storage's, the ledger's) and a CONNECT_TIMEOUT for a Redis that is coming back.
STATE_DEADLINE = {"sqlite": 2.0, "redis": 3.5}
# A request is late when its wall time, less the time its process was not running (the
# worker's heartbeat thread measures it: a loaded machine, 2 cores for 5 runs, stops a
# process for seconds), passes its deadline by more than SLACK (a thread switch, GIL
# hand-overs, timer granularity). A request blocked on a socket is not "not running":
# its heartbeat keeps time, so a hang is still late.
SLACK = 0.5
HEARTBEAT = 0.02  # seconds between the heartbeat's ticks
READY_WAIT = 120.0  # how long the workers may take to start (imports, on a loaded box)
PATHS = 40  # distinct URLs: a mix of hits, misses and concurrent misses
QUOTA = 10_000_000  # the stub's period quota: never the limit, only a total to count from


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---------------------------------------------------------------------------- worker


class Heartbeat:
    """Time this process spent not running: a thread that sleeps HEARTBEAT at a time and
    adds up how late it wakes. Read before and after a request, the difference is the
    part of the request's wall time the machine took from it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._stalled = 0.0
        threading.Thread(target=self._beat, daemon=True).start()

    def _beat(self) -> None:
        while True:
            time.sleep(HEARTBEAT)
            with self._lock:
                now = time.monotonic()
                self._stalled += max(0.0, now - self._last - HEARTBEAT)
                self._last = now

    def stalled(self) -> float:
        """Seconds stalled so far, the tick that is overdue now included."""
        with self._lock:
            return self._stalled + max(0.0, time.monotonic() - self._last - HEARTBEAT)


def worker(args: argparse.Namespace) -> None:
    """Requests until the stop file appears, one JSON line per request."""

    import quotaflow
    from quotaflow import ApiProfile, Quota, QuotaHeaders

    reading: dict[str, Any] = {}
    if args.headers == "x-requests":
        reading["read_quota"] = QuotaHeaders(
            remaining="x-requests-remaining", used="x-requests-used", last="x-requests-last"
        )
    profile = ApiProfile(
        name="stub",
        hosts=("127.0.0.1",),
        quota=Quota(QUOTA),
        **reading,
        rates=(),
        freshness=lambda request, response, now: 1,
        max_stale=3600,
        retries=0,
        breaker_threshold=0,
    )
    settings: dict[str, Any] = {"state_dir": args.state}
    if args.redis_url:
        settings.update(redis_url=args.redis_url, redis_prefix="chaos")
    rng = random.Random(f"{args.seed}-{os.getpid()}")
    stop = Path(args.stop)
    heartbeat = Heartbeat()
    allowed = (quotaflow.StateUnavailable, quotaflow.RateLimited, quotaflow.CircuitOpen)
    with (
        open(args.log, "a", buffering=1) as log,
        quotaflow.make_client(
            profiles=[profile], plugins=False, timeout=args.timeout, **settings
        ) as client,
    ):
        while not stop.exists():
            path = f"/p{rng.randrange(PATHS)}" if rng.random() < 0.8 else f"/u{rng.random()}"
            started, wall, stalled = time.time(), time.monotonic(), heartbeat.stalled()
            record: dict[str, Any] = {"pid": os.getpid(), "started": started}
            try:
                response = client.get(f"{args.base}{path}", extensions={"priority": "critical"})
                record["outcome"] = response.extensions["quotaflow"].cache.value
                if response.status_code != 200:
                    record["outcome"] = f"status {response.status_code}"
            except allowed as exc:
                record["outcome"] = type(exc).__name__
            except Exception as exc:
                record["outcome"] = type(exc).__name__
                record["unexpected"] = traceback.format_exc(limit=-6)
                del exc
            record["seconds"] = time.monotonic() - wall
            record["stalled"] = heartbeat.stalled() - stalled
            log.write(json.dumps(record) + "\n")


# ------------------------------------------------------------------------ the chaos


class Redis:
    """A redis-server of this run's own, on a free port, with an append-only file."""

    def __init__(self, directory: Path, persist: bool = True) -> None:
        self.port = free_port()
        self.directory = directory
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--save", ""),
                *("--appendonly", "yes" if self.persist else "no"),
                *("--appendfsync", "always", "--dir", str(self.directory)),
                *("--bind", "127.0.0.1"),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) as probe:
                    probe.sendall(b"PING\r\n")
                    if probe.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def restart(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)


def ledger(state: Path, redis_url: str | None) -> int:
    """Units the ledger counts as spent on the ``stub`` profile (every credential's row),
    reserved in flight included (a killed worker's reservations stay charged)."""
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url)
        total = 0
        for key in client.scan_iter(match="chaos:quota:stub*"):
            row = client.hgetall(key)
            total += int(float(row[b"total"])) - int(float(row[b"remaining"]))
        for key in client.scan_iter(match="chaos:inflight:stub*"):
            total += sum(int(value.split(b":")[0]) for value in client.hvals(key))
        client.close()
        return total
    with sqlite3.connect(state / "state.db", timeout=30) as db:
        match = "profile = 'stub' OR profile LIKE 'stub#%'"
        used = db.execute(f"SELECT COALESCE(SUM(total - remaining), 0) FROM quota WHERE {match}")
        inflight = db.execute(f"SELECT COALESCE(SUM(cost), 0) FROM inflight WHERE {match}")
        return int(used.fetchone()[0]) + int(inflight.fetchone()[0])


def hold_lock(state: Path, seconds: float, events: list[str]) -> None:
    """Another process's long write transaction: BEGIN EXCLUSIVE on state.db."""
    db = sqlite3.connect(state / "state.db", timeout=30, isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    events.append(f"{time.time():.3f} state.db locked for {seconds} s")
    time.sleep(seconds)
    db.execute("ROLLBACK")
    db.close()
    events.append(f"{time.time():.3f} state.db released")


def ready(work: Path, workers: int, events: list[str]) -> None:
    """Wait until every worker has finished a request: the run's clock (and so every
    fault) starts once they all work, however long a loaded machine takes to start them."""
    deadline = time.monotonic() + READY_WAIT
    logs = [work / f"worker-{index}.jsonl" for index in range(workers)]
    while time.monotonic() < deadline:
        if all(log.exists() and log.stat().st_size > 0 for log in logs):
            events.append(f"{time.time():.3f} all {workers} workers working")
            return
        time.sleep(0.05)
    raise RuntimeError(f"the workers did not start within {READY_WAIT} s")


def chaos(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.stub_server import StubServer

    rng = random.Random(args.seed)
    work = Path(args.dir or tempfile.mkdtemp(prefix="qf-chaos-"))
    state = work / "state"
    state.mkdir(parents=True, exist_ok=True)
    stop = work / "stop"
    stop.unlink(missing_ok=True)
    events: list[str] = []
    redis = Redis(work, not args.no_persist) if args.backend == "redis" else None
    workers: dict[int, subprocess.Popen[bytes]] = {}

    with StubServer(QUOTA if args.headers == "x-requests" else None) as stub:

        def spawn(index: int) -> None:
            command = [sys.executable, "-m", "tests.faults.chaos_run", "worker"]
            command += ["--base", stub.base, "--state", str(state), "--stop", str(stop)]
            command += ["--log", str(work / f"worker-{index}.jsonl"), "--seed", str(args.seed)]
            command += ["--timeout", str(args.timeout), "--headers", args.headers]
            if redis is not None:
                command += ["--redis-url", redis.url]
            workers[index] = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[2])

        try:
            for index in range(args.workers):
                spawn(index)
            ready(work, args.workers, events)
            began = time.monotonic()
            # The faults, at random moments of the run (the first second left alone).
            moments = sorted(rng.uniform(1, args.seconds) for _ in range(args.kills))
            plan: list[tuple[float, str]] = [(moment, "kill") for moment in moments]
            if redis is None and args.lock:
                plan.append((args.seconds * 0.4, "lock"))
            if redis is not None and args.freeze:
                # Restarted before the middle: the workers get back to Redis (their
                # guards leave it alone for RETRY_AFTER, 5 s, after the outage) and
                # work on the restarted server for the rest of the run.
                plan.append((args.seconds * 0.2, "freeze"))
                plan.append((args.seconds * 0.2 + args.freeze + 1, "restart"))
            plan.sort()
            locker: threading.Thread | None = None
            for moment, what in plan:
                time.sleep(max(0.0, began + moment - time.monotonic()))
                if what == "kill":
                    index = rng.randrange(args.workers)
                    victim = workers[index]
                    victim.send_signal(signal.SIGKILL)
                    victim.wait(10)
                    events.append(f"{time.time():.3f} SIGKILL worker {index} (pid {victim.pid})")
                    spawn(index)
                elif what == "lock":
                    locker = threading.Thread(target=hold_lock, args=(state, args.lock, events))
                    locker.start()
                elif what == "freeze" and redis is not None:
                    redis.signal(signal.SIGSTOP)
                    events.append(f"{time.time():.3f} Redis frozen for {args.freeze} s")
                    time.sleep(args.freeze)
                    redis.signal(signal.SIGCONT)
                    events.append(f"{time.time():.3f} Redis thawed")
                elif what == "restart" and redis is not None:
                    redis.restart()
                    events.append(f"{time.time():.3f} Redis SIGKILLed and restarted")
            time.sleep(max(0.0, began + args.seconds - time.monotonic()))
            if locker is not None:
                locker.join()
            stop.touch()
            for process in workers.values():
                try:
                    process.wait(args.timeout + STATE_DEADLINE[args.backend] + 30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    events.append(f"worker pid {process.pid} did not stop")
            time.sleep(0.1)  # requests already on the wire land at the stub
            calls = stub.total
            spent = ledger(state, redis.url if redis is not None else None)
        finally:
            stop.touch()
            for process in workers.values():
                if process.poll() is None:
                    process.kill()
            if redis is not None:
                redis.stop()

    deadline = args.timeout + STATE_DEADLINE[args.backend] + SLACK
    outcomes: Counter[str] = Counter()
    unexpected: list[str] = []
    late: list[dict[str, Any]] = []
    slowest = stalled = 0.0
    for log in sorted(work.glob("worker-*.jsonl")):
        for line in log.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # the line a SIGKILL cut short
            outcomes[record["outcome"]] += 1
            slowest = max(slowest, record["seconds"])
            stalled = max(stalled, record["stalled"])
            if "unexpected" in record:
                unexpected.append(record["unexpected"])
            if record["seconds"] - record["stalled"] > deadline:
                late.append(record)
    return {
        "backend": args.backend,
        "headers": args.headers,
        "workers": args.workers,
        "seconds": args.seconds,
        "calls": calls,
        "spent": spent,
        "requests": sum(outcomes.values()),
        "outcomes": dict(outcomes),
        "unexpected": unexpected,
        "deadline": deadline,
        "slowest": round(slowest, 3),
        "most_stalled": round(stalled, 3),
        "late": late,
        "events": events,
        "dir": str(work),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", nargs="?", default="chaos", choices=["chaos", "worker"])
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "redis"])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--lock", type=float, default=0.0, help="hold state.db this long")
    parser.add_argument("--freeze", type=float, default=0.0, help="SIGSTOP Redis this long")
    parser.add_argument(
        "--no-persist", action="store_true", help="Redis without its append-only file"
    )
    parser.add_argument("--timeout", type=float, default=2.0, help="each request's timeout")
    parser.add_argument(
        "--headers",
        default="none",
        choices=["none", "x-requests"],
        help="x-requests: the stub reports usage as The Odds API does, the profile reads it",
    )
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--dir", help="work directory (default: a new temporary one)")
    parser.add_argument("--out", help="write the summary here (default: stdout)")
    # worker only
    parser.add_argument("--base")
    parser.add_argument("--state")
    parser.add_argument("--stop")
    parser.add_argument("--log")
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    if args.role == "worker":
        worker(args)
        return
    summary = json.dumps(chaos(args), indent=2)
    if args.out:
        Path(args.out).write_text(summary)
    else:
        print(summary)


if __name__ == "__main__":
    main()
