"""Many threads and tasks hammering a few URLs: upstream calls, throughput, hit latency.

Both rows use the same in-process upstream (``httpx.MockTransport``), measured in the
same run, so only ratios matter. Run::

    make bench            # or: python benchmarks/concurrency.py --workers 50 --requests 200

For each of sync (threads) and async (tasks) it prints: requests made, upstream calls
(quotaflow must make one per URL), requests per second, and p50/p99 latency, for
plain httpx and for quotaflow, and quotaflow's ratio to plain httpx.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import RESULTS, json_arg, write_results

import quotaflow

BASE = "https://api.bench/v1/odds"
PROFILE = quotaflow.ApiProfile(
    name="bench",
    hosts=("api.bench",),
    rates=(quotaflow.Rate(1_000_000, per=1.0),),
    quota=quotaflow.Quota(1_000_000_000),
    freshness=lambda request, response, now: 3600,
)


class Upstream:
    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.calls += 1
        return httpx.Response(
            200, json={"path": request.url.path}, headers={"cache-control": "max-age=3600"}
        )


def summary(name: str, latencies: list[float], seconds: float, calls: int) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "name": name,  # type: ignore[dict-item]
        "requests": len(ordered),
        "upstream": calls,
        "rps": len(ordered) / seconds,
        "p50_us": statistics.median(ordered) * 1e6,
        "p99_us": ordered[int(len(ordered) * 0.99) - 1] * 1e6,
    }


def run_threads(
    client: httpx.Client, workers: int, requests: int, urls: int
) -> tuple[list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        mine = []
        for n in range(requests):
            started = time.perf_counter()
            client.get(f"{BASE}/{(index + n) % urls}")
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(worker, range(workers)))
    return latencies, time.perf_counter() - started


async def run_tasks(
    client: httpx.AsyncClient, workers: int, requests: int, urls: int
) -> tuple[list[float], float]:
    latencies: list[float] = []

    async def worker(index: int) -> None:
        for n in range(requests):
            started = time.perf_counter()
            await client.get(f"{BASE}/{(index + n) % urls}")
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(workers)))
    return latencies, time.perf_counter() - started


def measure(directory: Path, workers: int, requests: int, urls: int) -> list[dict[str, float]]:
    rows = []
    for name, factory in (
        ("httpx threads", lambda up: httpx.Client(transport=httpx.MockTransport(up))),
        (
            "quotaflow threads",
            lambda up: quotaflow.make_client(
                profiles=[PROFILE],
                plugins=False,
                state_dir=directory / "sync",
                transport=httpx.MockTransport(up),
            ),
        ),
    ):
        upstream = Upstream()
        with factory(upstream) as client:
            latencies, seconds = run_threads(client, workers, requests, urls)
        rows.append(summary(name, latencies, seconds, upstream.calls))

    async def async_rows() -> None:
        for name, factory in (
            ("httpx tasks", lambda up: httpx.AsyncClient(transport=httpx.MockTransport(up))),
            (
                "quotaflow tasks",
                lambda up: quotaflow.make_async_client(
                    profiles=[PROFILE],
                    plugins=False,
                    state_dir=directory / "async",
                    transport=httpx.MockTransport(up),
                ),
            ),
        ):
            upstream = Upstream()
            async with factory(upstream) as client:
                latencies, seconds = await run_tasks(client, workers, requests, urls)
            rows.append(summary(name, latencies, seconds, upstream.calls))

    asyncio.run(async_rows())
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=50, help="threads, then tasks")
    parser.add_argument("--requests", type=int, default=200, help="requests per worker")
    parser.add_argument("--urls", type=int, default=10, help="distinct URLs")
    parser.add_argument(
        "--json",
        type=json_arg,
        default=RESULTS,
        help="merge the results into this file ('-': none; default: %(default)s)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(Path(tmp), args.workers, args.requests, args.urls)
    print(f"{'row':<20}{'requests':>9}{'upstream':>9}{'req/s':>10}{'p50 us':>9}{'p99 us':>9}")
    for row in rows:
        print(
            f"{row['name']:<20}{row['requests']:>9}{row['upstream']:>9}{row['rps']:>10.0f}"
            f"{row['p50_us']:>9.0f}{row['p99_us']:>9.0f}"
        )
    by_name = {row["name"]: row for row in rows}
    for kind in ("threads", "tasks"):
        ours, bare = by_name[f"quotaflow {kind}"], by_name[f"httpx {kind}"]
        print(
            f"quotaflow / httpx ({kind}): p50 {ours['p50_us'] / bare['p50_us']:.2f}x, "
            f"throughput {ours['rps'] / bare['rps']:.2f}x, upstream calls {ours['upstream']:.0f}"
        )
    write_results(
        args.json,
        "concurrency",
        {"workers": args.workers, "requests": args.requests, "urls": args.urls, "rows": rows},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
