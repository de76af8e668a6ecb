"""What quotaflow's stack costs per request, as ratios to bare httpx in the same run.

Every row uses the same in-process upstream (``httpx.MockTransport``), so the
network never counts; each timing is the median of several rounds. Run::

    make bench            # or: python benchmarks/overhead.py --requests 2000

Rows:
    httpx (floor)        httpx.Client on MockTransport: the floor every layer is measured against
    hishel hit           hishel's CacheTransport alone, RFC mode, SqliteStorage (same file type)
    quotaflow hit (hot)  the whole stack answering from its in-memory hot tier
    quotaflow hit (warm) the whole stack answering from SQLite (hot tier off)
    quotaflow miss       the whole stack going upstream (a new URL each time): all but the network
    ... async            the same through httpx.AsyncClient
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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


def _loop(client: httpx.Client, url: str | None) -> Callable[[int], None]:
    counter = iter(range(10**9))

    def run(requests: int) -> None:
        for _ in range(requests):
            client.get(url if url is not None else f"{URL}?page={next(counter)}")

    return run


def _aloop(client: httpx.AsyncClient) -> Callable[[int], Awaitable[None]]:
    async def run(requests: int) -> None:
        for _ in range(requests):
            await client.get(URL)

    return run


def sync_variants(directory: Path, stack: contextlib.ExitStack) -> dict[str, Callable[[int], None]]:
    mock = httpx.MockTransport(upstream)
    bare = stack.enter_context(httpx.Client(transport=mock))
    storage = hishel.SqliteStorage(database_path=directory / "hishel.db")
    options = hishel.CacheOptions(shared=False)
    alone = stack.enter_context(
        httpx.Client(transport=CacheTransport(mock, storage=storage, rfc=options))
    )
    ours = stack.enter_context(
        quotaflow.make_client(
            profiles=[PROFILE], plugins=False, state_dir=directory / "sync", transport=mock
        )
    )
    warm = stack.enter_context(
        quotaflow.make_client(
            profiles=[PROFILE],
            plugins=False,
            state_dir=directory / "warm",
            transport=mock,
            hot_entries=0,
        )
    )
    for client in (alone, ours, warm):
        client.get(URL)
    return {
        "httpx (floor)": _loop(bare, URL),
        "hishel hit": _loop(alone, URL),
        "quotaflow hit (hot)": _loop(ours, URL),
        "quotaflow hit (warm)": _loop(warm, URL),
        "quotaflow miss": _loop(ours, None),
    }


async def async_variants(
    directory: Path, stack: contextlib.AsyncExitStack
) -> dict[str, Callable[[int], Awaitable[None]]]:
    mock = httpx.MockTransport(upstream)
    bare = await stack.enter_async_context(httpx.AsyncClient(transport=mock))
    storage = hishel.AsyncSqliteStorage(database_path=directory / "hishel-async.db")
    cached = AsyncCacheTransport(mock, storage=storage, rfc=hishel.CacheOptions(shared=False))
    alone = await stack.enter_async_context(httpx.AsyncClient(transport=cached))
    ours = await stack.enter_async_context(
        quotaflow.make_async_client(
            profiles=[PROFILE], plugins=False, state_dir=directory / "async", transport=mock
        )
    )
    for client in (alone, ours):
        await client.get(URL)
    return {
        "httpx (floor) async": _aloop(bare),
        "hishel hit async": _aloop(alone),
        "quotaflow hit (hot) async": _aloop(ours),
    }


def interleaved(
    variants: dict[str, Callable[[int], float]], requests: int, rounds: int
) -> dict[str, list[float]]:
    """Microseconds per request, one sample per round, variants alternating within a round
    so that drift on a noisy machine hits them all alike."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            samples[name].append(run(requests))
    return samples


def measure(directory: Path, requests: int, rounds: int) -> dict[str, list[float]]:
    def timed(run: Callable[[int], None]) -> Callable[[int], float]:
        def sample(n: int) -> float:
            started = time.perf_counter()
            run(n if run is not miss else max(n // 5, 1))
            return (
                (time.perf_counter() - started) / (n if run is not miss else max(n // 5, 1)) * 1e6
            )

        return sample

    with contextlib.ExitStack() as stack:
        variants = sync_variants(directory, stack)
        miss = variants["quotaflow miss"]
        samples = interleaved({k: timed(v) for k, v in variants.items()}, requests, rounds)

    async def async_samples() -> dict[str, list[float]]:
        async with contextlib.AsyncExitStack() as stack:
            variants = await async_variants(directory, stack)
            found: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(rounds):
                for name, run in variants.items():
                    started = time.perf_counter()
                    await run(requests)
                    found[name].append((time.perf_counter() - started) / requests * 1e6)
            return found

    samples.update(asyncio.run(async_samples()))
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=500, help="requests per round")
    parser.add_argument("--rounds", type=int, default=15, help="rounds (medians are kept)")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        samples = measure(Path(tmp), args.requests, args.rounds)

    rows: dict[str, dict[str, float]] = {}
    print(f"{'row':<28}{'us/request':>11}{'x floor':>9}{'spread':>15}")
    for name, values in samples.items():
        floor = samples["httpx (floor) async" if name.endswith("async") else "httpx (floor)"]
        ratios = [value / base for value, base in zip(values, floor, strict=True)]
        rows[name] = {
            "us": statistics.median(values),
            "ratio": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
        }
        row = rows[name]
        spread = f"{row['ratio_min']:.2f}-{row['ratio_max']:.2f}"
        print(f"{name:<28}{row['us']:>11.1f}{row['ratio']:>9.2f}{spread:>15}")
    versus = [
        ours / alone
        for ours, alone in zip(samples["quotaflow hit (warm)"], samples["hishel hit"], strict=True)
    ]
    print(
        f"\nquotaflow warm hit / hishel hit (same storage): {statistics.median(versus):.2f}"
        "\ntargets: hot hit <= 1.10x floor (sync and async); warm hit <= 1.6x;"
        " warm hit <= 1.10x hishel alone"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"overhead": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
