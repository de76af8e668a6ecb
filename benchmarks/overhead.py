"""What quotaflow's stack costs per request, as ratios to bare httpx in the same run.

Every row uses the same in-process upstream (``httpx.MockTransport``), so the
network never counts; each timing is the median of several rounds. Run::

    make bench            # or: python benchmarks/overhead.py --requests 2000

Rows:
    httpx (floor)        httpx.Client on MockTransport: the floor every layer is measured against
    hishel hit           hishel's CacheTransport alone, RFC mode, SqliteStorage (same file type)
    quotaflow hit        the whole stack answering from its cache
    quotaflow miss       the whole stack going upstream (a new URL each time): all but the network
    ... async            the same through httpx.AsyncClient
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import hishel
import httpx
from hishel.httpx import AsyncCacheTransport, CacheTransport

import quotaflow

BODY = json.dumps([{"id": n, "price": 1.91} for n in range(40)]).encode()  # ~1 KB
HEADERS = {"content-type": "application/json", "cache-control": "max-age=3600"}
URL = "https://api.bench/v1/odds"
PROFILE = quotaflow.ApiProfile(
    name="bench",
    hosts=("api.bench",),
    rates=(quotaflow.Rate(1_000_000, per=1.0),),
    quota=quotaflow.Quota(1_000_000_000),
    freshness=lambda request, response, now: 3600,
    max_stale=3600,
)


def upstream(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=BODY, headers=HEADERS)


def timed(run: Callable[[int], None], requests: int, rounds: int) -> float:
    """Median microseconds per request over ``rounds`` rounds."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        run(requests)
        samples.append((time.perf_counter() - started) / requests * 1e6)
    return statistics.median(samples)


def atimed(run: Callable[[int], Awaitable[None]], requests: int, rounds: int) -> float:
    async def main() -> float:
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            await run(requests)
            samples.append((time.perf_counter() - started) / requests * 1e6)
        return statistics.median(samples)

    return asyncio.run(main())


def sync_rows(directory: Path, requests: int, rounds: int) -> dict[str, float]:
    mock = httpx.MockTransport(upstream)
    rows: dict[str, float] = {}

    with httpx.Client(transport=mock) as bare:
        rows["httpx (floor)"] = timed(
            lambda n: [bare.get(URL) for _ in range(n)] and None, requests, rounds
        )

    storage = hishel.SqliteStorage(database_path=directory / "hishel.db")
    options = hishel.CacheOptions(shared=False)
    with httpx.Client(transport=CacheTransport(mock, storage=storage, rfc=options)) as alone:
        alone.get(URL)
        rows["hishel hit"] = timed(
            lambda n: [alone.get(URL) for _ in range(n)] and None, requests, rounds
        )

    with quotaflow.make_client(
        profiles=[PROFILE], plugins=False, state_dir=directory / "sync", transport=mock
    ) as client:
        client.get(URL)
        rows["quotaflow hit"] = timed(
            lambda n: [client.get(URL) for _ in range(n)] and None, requests, rounds
        )
        counter = iter(range(10**9))
        rows["quotaflow miss"] = timed(
            lambda n: [client.get(f"{URL}?page={next(counter)}") for _ in range(n)] and None,
            max(requests // 5, 1),
            rounds,
        )
    return rows


def async_rows(directory: Path, requests: int, rounds: int) -> dict[str, float]:
    mock = httpx.MockTransport(upstream)
    rows: dict[str, float] = {}

    async def run_with(client: httpx.AsyncClient, name: str) -> None:
        async def loop(n: int) -> None:
            for _ in range(n):
                await client.get(URL)

        await client.get(URL)

        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            await loop(requests)
            samples.append((time.perf_counter() - started) / requests * 1e6)
        rows[name] = statistics.median(samples)

    async def main() -> None:
        async with httpx.AsyncClient(transport=mock) as bare:
            await run_with(bare, "httpx (floor) async")
        storage = hishel.AsyncSqliteStorage(database_path=directory / "hishel-async.db")
        cached = AsyncCacheTransport(mock, storage=storage, rfc=hishel.CacheOptions(shared=False))
        async with httpx.AsyncClient(transport=cached) as alone:
            await run_with(alone, "hishel hit async")
        async with quotaflow.make_async_client(
            profiles=[PROFILE], plugins=False, state_dir=directory / "async", transport=mock
        ) as client:
            await run_with(client, "quotaflow hit async")

    asyncio.run(main())
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (the median is kept)")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        rows = sync_rows(Path(tmp), args.requests, args.rounds)
        rows.update(async_rows(Path(tmp), args.requests, args.rounds))

    floors = {"": rows["httpx (floor)"], " async": rows["httpx (floor) async"]}
    print(f"{'row':<24}{'us/request':>12}{'x floor':>10}")
    for name, micros in rows.items():
        floor = floors[" async"] if name.endswith("async") else floors[""]
        print(f"{name:<24}{micros:>12.1f}{micros / floor:>10.2f}")
    hishel_ratio = rows["quotaflow hit"] / rows["hishel hit"]
    print(f"\nquotaflow hit / hishel hit (same storage): {hishel_ratio:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"us_per_request": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
