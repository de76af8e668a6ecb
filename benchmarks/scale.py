"""Scale: hit cost and state size as the cache grows; cost per request as threads grow.

1. Entries: the cache is filled through the whole stack (one game's moneyline per entry,
   2 KB, a distinct URL each) to 1K, 10K and 30K entries (``--max``: and 100K), in
   SQLite (the state directory) and in Redis (127.0.0.1:6379 when it answers; under a
   prefix of its own, deleted afterwards). At each size a client with
   ``hot_entries=0`` reads random entries (warm hits), each sample between two runs of
   bare httpx on the same URLs: ratio per round, median and spread. Then the same, and
   misses (new URLs through the whole stack), 10 minutes later on the simulated clock
   (time-machine, ticking): entries of a cache in use are older than hishel's 60 s touch
   interval and 180 s soft-delete window, which changes what hits and stores cost.
   State size: the SQLite files (write-ahead logs folded in) or the Redis memory of the
   prefix's keys.
   Memory: at each size a fresh Python process opens a client (the default hot tier) on
   that state and reads random stored entries (``--rss-requests``); its RSS
   (``VmRSS``/``VmHWM`` of ``/proc/self/status``) after the client is built and after the
   reads: what quotaflow holds must not grow with what is stored.
2. Threads: 1, 8 and 32 threads making hot hits on 16 URLs through one client, against
   bare httpx with the same threads: wall time per request.

Run::

    python benchmarks/scale.py            # 1K/10K/30K
    python benchmarks/scale.py --max      # up to 100K (fills take minutes)
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import attrs
import httpx
import respx
import time_machine
from common import RESULTS, json_arg, ratios, spread, write_results
from overhead import BENCH_PROFILE, REPLAY_HEADERS, keyed
from replay import load, router

import quotaflow

FIXTURE = load("event_odds_nfl")
# How much later the steady-state samples are taken: past hishel's 60 s touch interval
# and its 180 s soft-delete window, as entries of a cache in use for a while are.
AGE = 600.0
NEVER_STORED = itertools.count(10**9)  # URLs for misses, beyond any fill
# Filling spends no rate or quota: only the cache's own work is measured.
FILL_PROFILE = attrs.evolve(BENCH_PROFILE, rates=(), quota=None)


def url_for(n: int) -> httpx.URL:
    return keyed(FIXTURE).copy_add_param("commenceTimeFrom", str(n))


def redis_reachable(url: str) -> bool:
    try:
        import redis
    except ImportError:
        return False
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


class Backend:
    """Where the state lives for one series of sizes."""

    name = ""
    directory: Path
    url = ""
    prefix = ""

    def client(self, **extra: Any) -> httpx.Client:
        raise NotImplementedError

    def size(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Sqlite(Backend):
    name = "SQLite"

    def __init__(self, directory: Path, routes: respx.Router) -> None:
        self.directory, self.routes = directory, routes

    def client(self, **extra: Any) -> httpx.Client:
        return quotaflow.make_client(
            profiles=[extra.pop("profile", FILL_PROFILE)],
            plugins=False,
            state_dir=self.directory,
            transport=httpx.MockTransport(self.routes.handler),
            **extra,
        )

    def size(self) -> int:
        for path in self.directory.glob("*.db"):
            with contextlib.closing(sqlite3.connect(path)) as connection:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return sum(path.stat().st_size for path in self.directory.glob("*.db*"))


class Redis(Backend):
    name = "Redis"

    def __init__(self, url: str, directory: Path, routes: respx.Router) -> None:
        import redis

        self.url, self.directory, self.routes = url, directory, routes
        self.prefix = f"quotaflow-bench-{uuid.uuid4().hex[:12]}"
        self._redis = redis.Redis.from_url(url)

    def client(self, **extra: Any) -> httpx.Client:
        return quotaflow.make_client(
            profiles=[extra.pop("profile", FILL_PROFILE)],
            plugins=False,
            state_dir=self.directory,
            transport=httpx.MockTransport(self.routes.handler),
            redis_url=self.url,
            redis_prefix=self.prefix,
            **extra,
        )

    def _keys(self) -> Iterator[bytes]:
        yield from self._redis.scan_iter(f"{self.prefix}:*", count=1000)

    def size(self) -> int:
        keys = list(self._keys())
        total = 0
        for start in range(0, len(keys), 1000):
            pipe = self._redis.pipeline(transaction=False)
            for key in keys[start : start + 1000]:
                pipe.memory_usage(key, samples=0)
            total += sum(value or 0 for value in pipe.execute())
        return total

    def close(self) -> None:
        keys = list(self._keys())
        for start in range(0, len(keys), 1000):
            self._redis.unlink(*keys[start : start + 1000])
        self._redis.close()


def fill(backend: Backend, routes: respx.Router, start: int, stop: int) -> float:
    """Store entries start..stop-1 through the stack; seconds taken."""
    started = time.perf_counter()
    with backend.client(hot_entries=0) as client:
        for n in range(start, stop):
            client.get(url_for(n))
            if n % 1000 == 999:
                routes.reset()
    routes.reset()
    return time.perf_counter() - started


def sandwich(
    backend: Backend, routes: respx.Router, rounds: int, pick: Callable[[], list[httpx.URL]]
) -> dict[str, float]:
    """Requests to the URLs ``pick`` gives, each round between two runs of bare httpx on
    the same URLs; ratio per round, median and spread, upstream calls made by ours."""
    with (
        backend.client(hot_entries=0, profile=BENCH_PROFILE) as ours,
        httpx.Client(transport=httpx.MockTransport(routes.handler)) as bare,
    ):

        def timed(client: httpx.Client, urls: list[httpx.URL]) -> tuple[float, int]:
            routes.reset()
            started = time.perf_counter()
            for url in urls:
                client.get(url)
            return (time.perf_counter() - started) / len(urls) * 1e6, routes.calls.call_count

        samples, bases, upstream = [], [], 0
        for _ in range(rounds):
            chosen = pick()
            before, _ = timed(bare, chosen)
            mine, calls = timed(ours, chosen)
            after, _ = timed(bare, chosen)
            samples.append(mine)
            bases.append((before + after) / 2)
            upstream += calls
    return {"us": statistics.median(samples), **ratios(samples, bases), "upstream": upstream}


def measure_size(
    backend: Backend, routes: respx.Router, entries: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Warm hits now; then, AGE seconds later (time-machine, ticking), warm hits and misses."""
    rng = random.Random(entries)

    def stored() -> list[httpx.URL]:
        return [url_for(rng.randrange(entries)) for _ in range(args.hits)]

    def new() -> list[httpx.URL]:
        return [url_for(next(NEVER_STORED)) for _ in range(args.misses)]

    found: dict[str, Any] = {"hit": sandwich(backend, routes, args.rounds, stored)}
    with time_machine.travel(time.time() + AGE, tick=True):
        found["hit_aged"] = sandwich(backend, routes, args.rounds, stored)
        found["miss_aged"] = sandwich(backend, routes, args.rounds, new)
    return found


def _status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in KiB (Linux)."""
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


def rss_child(args: argparse.Namespace) -> dict[str, Any]:
    """In this fresh process: a client on the given state, random stored entries read."""
    routes = router([FIXTURE.name], headers=REPLAY_HEADERS)
    redis = {"redis_url": args.redis_url, "redis_prefix": args.child_prefix}
    imported = _status()
    with quotaflow.make_client(
        profiles=[FILL_PROFILE],
        plugins=False,
        state_dir=Path(args.child_state),
        transport=httpx.MockTransport(routes.handler),
        **(redis if args.child_prefix else {}),
    ) as client:
        built = _status()
        rng = random.Random(0)
        for _ in range(args.rss_requests):
            client.get(url_for(rng.randrange(args.child_entries)))
        read = _status()
    return {
        "imported_kib": imported["VmRSS"],
        "built_kib": built["VmRSS"],
        "after_kib": read["VmRSS"],
        "peak_kib": read["VmHWM"],
        "upstream": routes.calls.call_count,
        "requests": args.rss_requests,
    }


def rss_at(backend: Backend, entries: int, requests: int) -> dict[str, Any]:
    """rss_child in a fresh interpreter, so that nothing this process holds counts."""
    argv = [sys.executable, __file__, "--child-state", str(backend.directory)]
    argv += ["--child-entries", str(entries), "--rss-requests", str(requests)]
    if backend.prefix:
        argv += ["--child-prefix", backend.prefix, "--redis-url", backend.url]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.splitlines()[-1]))


def threads_cost(
    directory: Path, routes: respx.Router, counts: list[int], requests: int, rounds: int
) -> dict[str, dict[str, float]]:
    urls = [url_for(n) for n in range(16)]
    found: dict[str, dict[str, float]] = {}
    with (
        quotaflow.make_client(
            profiles=[BENCH_PROFILE],
            plugins=False,
            state_dir=directory,
            transport=httpx.MockTransport(routes.handler),
        ) as ours,
        httpx.Client(transport=httpx.MockTransport(routes.handler)) as bare,
    ):
        for url in urls:
            ours.get(url)

        def wall(client: httpx.Client, threads: int) -> float:
            share = max(1, requests // threads)
            barrier = threading.Barrier(threads + 1)

            def work(index: int) -> None:
                barrier.wait()
                for n in range(share):
                    client.get(urls[(index + n) % len(urls)])

            pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
            for thread in pool:
                thread.start()
            routes.reset()
            barrier.wait()
            started = time.perf_counter()
            for thread in pool:
                thread.join()
            elapsed = time.perf_counter() - started
            routes.reset()
            return elapsed / (share * threads) * 1e6

        for threads in counts:
            bare_samples, our_samples = [], []
            for _ in range(rounds):
                bare_samples.append(wall(bare, threads))
                our_samples.append(wall(ours, threads))
            found[str(threads)] = {
                "httpx_us": statistics.median(bare_samples),
                "us": statistics.median(our_samples),
                **ratios(our_samples, bare_samples),
            }
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="1000,10000,30000", help="cache sizes (entries), comma-separated"
    )
    parser.add_argument("--max", action="store_true", help="also 100,000 entries")
    parser.add_argument("--hits", type=int, default=200, help="warm hits per sample")
    parser.add_argument("--misses", type=int, default=20, help="misses per sample")
    parser.add_argument("--rounds", type=int, default=7, help="samples per size")
    parser.add_argument("--threads", default="1,8,32", help="thread counts, comma-separated")
    parser.add_argument(
        "--thread-requests", type=int, default=3000, help="hot hits per thread-count sample"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--rss-requests", type=int, default=2000, help="reads by the process whose RSS is read"
    )
    parser.add_argument("--child-state", help=argparse.SUPPRESS)
    parser.add_argument("--child-entries", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-prefix", default="", help=argparse.SUPPRESS)
    parser.add_argument("--no-redis", action="store_true", help="SQLite only")
    parser.add_argument(
        "--json",
        type=json_arg,
        default=RESULTS,
        help="merge the results into this file ('-': none; default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.child_state:
        print(json.dumps(rss_child(args)))
        return 0
    sizes = sorted(
        {int(size) for size in args.sizes.split(",")} | ({100_000} if args.max else set())
    )
    counts = [int(count) for count in args.threads.split(",")]
    routes = router([FIXTURE.name], headers=REPLAY_HEADERS)
    results: dict[str, Any] = {"entries": {}, "threads": {}}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        backends: list[Backend] = [Sqlite(Path(tmp) / "sqlite", routes)]
        if args.no_redis:
            print("Redis: skipped (--no-redis)")
        elif redis_reachable(args.redis_url):
            backends.append(Redis(args.redis_url, Path(tmp) / "redis-local", routes))
        else:
            print(f"Redis: not reachable at {args.redis_url}, skipped")
        for backend in backends:
            try:
                rows: dict[str, dict[str, float]] = {}
                stored = 0
                for entries in sizes:
                    added = max(1, entries - stored)
                    fill_seconds = fill(backend, routes, stored, entries)
                    stored = entries
                    found = measure_size(backend, routes, entries, args)
                    state = backend.size()
                    rows[str(entries)] = {
                        **found,
                        "rss": rss_at(backend, entries, args.rss_requests),
                        "state_bytes": state,
                        "bytes_per_entry": state / entries,
                        "fill_ms_per_entry": fill_seconds / added * 1e3,
                    }
                results["entries"][backend.name] = rows
            finally:
                backend.close()
        results["threads"] = threads_cost(
            Path(tmp) / "threads", routes, counts, args.thread_requests, args.rounds
        )
    report(results, sizes)
    print(f"({time.perf_counter() - started:.0f} s)")
    write_results(args.json, "scale", results)
    return 0


def report(results: dict[str, Any], sizes: list[int]) -> None:
    print(
        "warm hits (hot_entries=0) on random stored entries and misses (new URLs), as ratios to"
        " bare httpx on the same URLs;\n'aged': the same, 10 minutes after the fill (a cache in"
        " steady state)"
    )
    print(
        f"{'backend':<8}{'entries':>9}{'hit':>20}{'hit, aged':>20}{'miss, aged':>22}"
        f"{'miss us':>9}{'state':>10}{'/entry':>9}{'RSS built':>11}{'RSS read':>10}"
    )
    for backend, rows in results["entries"].items():
        for entries in sizes:
            row = rows[str(entries)]
            print(
                f"{backend:<8}{entries:>9,}{spread(row['hit']):>20}{spread(row['hit_aged']):>20}"
                f"{spread(row['miss_aged']):>22}{row['miss_aged']['us']:>9.0f}"
                f"{row['state_bytes'] / 2**20:>8.1f}MB{row['bytes_per_entry'] / 1024:>7.1f}KB"
                f"{row['rss']['built_kib'] / 1024:>10.1f}M{row['rss']['after_kib'] / 1024:>9.1f}M"
            )
        first, last = rows[str(sizes[0])], rows[str(sizes[-1])]
        grow = {
            name: last[name]["ratio"] / first[name]["ratio"]
            for name in ("hit", "hit_aged", "miss_aged")
        }
        print(
            f"{backend}: {sizes[-1] / sizes[0]:.0f}x the entries -> hit x{grow['hit']:.2f}, "
            f"aged hit x{grow['hit_aged']:.2f}, aged miss x{grow['miss_aged']:.2f}, "
            f"bytes per entry x{last['bytes_per_entry'] / first['bytes_per_entry']:.2f}, "
            f"RSS after {last['rss']['requests']:,} reads {first['rss']['after_kib'] / 1024:.1f}"
            f" -> {last['rss']['after_kib'] / 1024:.1f} MiB"
        )
    print("\nhot hits from threads sharing one client: wall time per request")
    print(f"{'threads':>8}{'httpx us':>10}{'quotaflow us':>14}{'ratio [spread]':>22}")
    for threads, row in results["threads"].items():
        print(f"{threads:>8}{row['httpx_us']:>10.0f}{row['us']:>14.0f}{spread(row):>22}")


if __name__ == "__main__":
    sys.exit(main())
