"""Several processes on one state (a state_dir, or a Redis) against a real local HTTP stub.

4 processes x 50 requests over 10 distinct URLs yield exactly 10 upstream calls;
4 processes sharing a quota of 40 units with requests costing 1 never spend more than 40;
4 processes racing for one 20/s window admit 20 in all; a 429's pause and an open
circuit learnt by one process hold for the next.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.stub_server import REDIS_URL, StubServer, redis_prefix

PROCESSES = 4
REQUESTS = 50

WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    import quotaflow
    from quotaflow import ApiProfile, Quota

    settings = json.loads(sys.argv[1])
    profile = ApiProfile(
        name="stub",
        hosts=("127.0.0.1",),
        freshness=lambda request, response, now: 600,
        quota=Quota(settings["quota"]),
        rates=(),
    )
    ok = refused = 0
    with quotaflow.make_client(
        profiles=[profile], plugins=False, timeout=10, **settings["client"]
    ) as client:
        print("ready", flush=True)
        while not os.path.exists(settings["go"]):
            time.sleep(0.001)
        for url in settings["urls"]:
            try:
                response = client.get(
                    url, headers={"x-slow": "0.05"}, extensions={"priority": "critical"}
                )
                response.raise_for_status()
                ok += 1
            except quotaflow.QuotaExhausted:
                refused += 1
    print(json.dumps({"ok": ok, "refused": refused}), flush=True)
    """
)


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "redis"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """``shared(n)``: the make_client settings of worker ``n``, sharing one state."""
    if request.param == "sqlite":
        yield lambda n: {"state_dir": str(tmp_path / "state")}
        return
    with redis_prefix() as prefix:
        # Each worker on a state_dir of its own: Redis is what they share.
        yield lambda n: {
            "state_dir": str(tmp_path / f"state-{n}"),
            "redis_url": REDIS_URL,
            "redis_prefix": prefix,
        }


def run_workers(
    tmp_path: Path, shared: Any, urls: list[list[str]], quota: int
) -> list[dict[str, int]]:
    """Start one process per URL list, release them together, return what each saw."""
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                json.dumps({"client": shared(n), "go": str(go), "urls": mine, "quota": quota}),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n, mine in enumerate(urls)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        go.touch()
        outputs = [worker.communicate(timeout=20)[0] for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert [worker.returncode for worker in workers] == [0] * len(workers)
    return [json.loads(output) for output in outputs]


def test_identical_misses_across_processes_make_one_upstream_call_each(
    stub: StubServer, shared: Any, tmp_path: Path
) -> None:
    """4 processes x 50 requests over 10 URLs: exactly 10 upstream calls (single flight)."""
    paths = [f"/odds/{n}" for n in range(10)]
    # Every process walks the URLs in the same order, so their misses coincide.
    urls = [[stub.base + paths[i % 10] for i in range(REQUESTS)]] * PROCESSES

    results = run_workers(tmp_path, shared, urls, quota=10_000)

    assert sum(r["ok"] for r in results) == PROCESSES * REQUESTS
    assert dict(stub.hits) == dict.fromkeys(paths, 1)


def test_processes_sharing_a_quota_never_overspend(
    stub: StubServer, shared: Any, tmp_path: Path
) -> None:
    """4 processes x 50 distinct requests, 40 units: 40 go upstream, the rest are refused."""
    urls = [[f"{stub.base}/p{n}/{i}" for i in range(REQUESTS)] for n in range(PROCESSES)]

    results = run_workers(tmp_path, shared, urls, quota=40)

    ok = sum(r["ok"] for r in results)
    refused = sum(r["refused"] for r in results)
    assert ok + refused == PROCESSES * REQUESTS
    assert stub.total <= 40
    assert ok == stub.total == 40


# One short window, driven phase by phase at simulated times (the parent says when).
WINDOW_WORKER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from quotaflow import ApiProfile, Rate
    from quotaflow._state._short import ShortWindow

    settings = json.loads(sys.argv[1])
    shared = settings["client"]
    directory = Path(shared["state_dir"])
    directory.mkdir(parents=True, exist_ok=True)
    if "redis_url" in shared:
        from quotaflow._state._redis import redis_backend

        backend = redis_backend(
            shared["redis_url"], prefix=shared["redis_prefix"], fail="closed",
            directory=directory, retention=60.0,
        )
    else:
        from quotaflow._state._sqlite import SqliteBackend

        backend = SqliteBackend(directory)
    profile = ApiProfile(name="stub", hosts=("127.0.0.1",), rates=(Rate(settings["limit"]),))
    window = ShortWindow(profile, backend.window_store("rate:stub"))
    print("ready", flush=True)
    for now in settings["times"]:
        sys.stdin.readline()
        admitted = sum(window.try_acquire(now) == 0 for _ in range(settings["tries"]))
        print(admitted, flush=True)
    backend.close()
    """
)


def test_processes_sharing_a_window_never_exceed_its_limit(shared: Any, tmp_path: Path) -> None:
    """4 processes race 30 asks each at the same simulated moments against 20/s: the
    window admits 20 in all, none half a second later, 20 again once a second passed."""
    start = 1_795_953_600.5
    times = [start, start + 0.5, start + 1.001, start + 1.5]
    settings = {"limit": 20, "tries": 30, "times": times}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WINDOW_WORKER, json.dumps({**settings, "client": shared(n)})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]
    admitted = []
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        for _ in times:
            for worker in workers:  # all at once
                assert worker.stdin is not None
                worker.stdin.write("go\n")
                worker.stdin.flush()
            admitted.append(sum(int(w.stdout.readline()) for w in workers if w.stdout))
        for worker in workers:
            worker.communicate(timeout=20)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()

    assert [worker.returncode for worker in workers] == [0] * PROCESSES
    assert admitted == [20, 0, 20, 0]


# A client on a simulated clock making the requests it is told to, one after another:
# (path, priority, status the stub answers with, Retry-After it sends).
STEPS_WORKER = textwrap.dedent(
    """
    import json, sys
    import httpx, quotaflow
    from quotaflow import ApiProfile, Rate

    settings = json.loads(sys.argv[1])
    now = [settings["start"]]

    def sleep(seconds):
        now[0] += seconds

    async def asleep(seconds):
        sleep(seconds)

    clock = quotaflow.Clock(time=lambda: now[0], sleep=sleep, asleep=asleep)
    profile = ApiProfile(
        name="stub",
        hosts=("127.0.0.1",),
        freshness=lambda request, response, now: 600,
        rates=(Rate(20),),
        retries=0,
    )
    seen = []
    with quotaflow.make_client(
        profiles=[profile], plugins=False, clock=clock, timeout=10, **settings["client"]
    ) as client:
        for path, priority, status, retry_after in settings["steps"]:
            headers = {"x-status": str(status), "x-retry-after": retry_after or ""}
            try:
                response = client.get(
                    settings["base"] + path, headers=headers, extensions={"priority": priority}
                )
                seen.append([response.status_code, now[0] - settings["start"]])
            except (quotaflow.QuotaflowError, httpx.HTTPError) as exc:
                seen.append([type(exc).__name__, now[0] - settings["start"]])
    print(json.dumps(seen), flush=True)
    """
)


def run_steps(stub: StubServer, shared: Any, n: int, start: float, steps: list[Any]) -> Any:
    """Run worker ``n`` to its end at simulated time ``start``; what each step got, when."""
    settings = {"client": shared(n), "base": stub.base, "start": start, "steps": steps}
    done = subprocess.run(
        [sys.executable, "-c", STEPS_WORKER, json.dumps(settings)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_429_in_one_process_pauses_the_next(stub: StubServer, shared: Any) -> None:
    """One process gets 429 with Retry-After: 30. Another, a second later, sends nothing
    until then: LOW and NORMAL are refused, CRITICAL waits the 29 s left and goes."""
    start = 1_795_953_600.0
    first = run_steps(stub, shared, 0, start, [["/odds", "normal", 429, "30"]])
    second = run_steps(
        stub,
        shared,
        1,
        start + 1,
        [
            ["/low", "low", 200, None],
            ["/normal", "normal", 200, None],
            ["/critical", "critical", 200, None],
        ],
    )

    assert first == [[429, 0]]
    assert second == [["RateLimited", 0], ["RateLimited", 0], [200, 29]]
    assert dict(stub.hits) == {"/odds": 1, "/critical": 1}


def test_a_circuit_opened_in_one_process_holds_in_the_next(stub: StubServer, shared: Any) -> None:
    """Five 503s in a row open the circuit in one process; the next process's requests
    are refused at once, until the cool-down is over and its probe closes it."""
    start = 1_795_953_600.0
    first = run_steps(stub, shared, 0, start, [[f"/{n}", "normal", 503, None] for n in range(5)])
    second = run_steps(
        stub,
        shared,
        1,
        start + 1,
        [["/refused", "critical", 200, None]],
    )
    third = run_steps(stub, shared, 2, start + 30, [["/probe", "normal", 200, None]])

    assert first == [[503, 0]] * 5
    assert second == [["CircuitOpen", 0]]
    assert third == [[200, 0]]
    assert dict(stub.hits) == {**{f"/{n}": 1 for n in range(5)}, "/probe": 1}
