"""What each layer costs per request, as ratios to bare httpx measured in the same run.

Every row answers from the same recorded Odds API answers (benchmarks/fixtures) through
a plain handler (a dict lookup, no respx route matching), innermost as
``httpx.MockTransport(handler)``, so the
network never counts. Three bodies: one game's moneyline (2 KB), the NFL Sunday slate
(16 games x 8 books x h2h/spreads/totals, 81 KB) and a 200 KB slate (40 games, built by
``quotaflow_theoddsapi.samples``). Within a round every variant of every group
runs once, so drift hits them all alike; a ratio is taken per round against that
round's floor, and the median and the spread (min-max) of those ratios are reported.
Run::

    make bench            # or: python benchmarks/overhead.py --requests 500 --rounds 15

Rows (each in sync and async, 2 KB, slate and 200 KB):
    httpx (floor)          httpx.Client on MockTransport(handler)
    httpx (A/A)            the same again: the spread of a ratio that should be 1.00
    quotaflow hit (hot)    the whole stack answering from its in-memory hot tier
    quotaflow hit (warm)   the whole stack answering from SQLite (make_client(hot_entries=0))
    quotaflow miss         the whole stack going upstream, a new URL each time:
                           all but the network (ledger, limiter, lease, freshness rule, store)
    hishel hit             hishel's CacheTransport alone, RFC mode, SqliteStorage (same type)
    hishel hit (no RFC)    the same without RFC 9111 (serves whatever is stored): what
                           reading one entry from SqliteStorage costs, the warm tier's floor
    hishel miss            hishel's CacheTransport alone storing each new URL's answer
                           (RFC mode, SqliteStorage): the least a miss through hishel costs
    httpx HTTPTransport    httpx.HTTPTransport whose pool answers from the router
                           (what pyrate-limiter's transport adds its limiter to)
    pyrate-limiter         pyrate_limiter.extras.httpx_limiter.RateLimiterTransport over
                           that pool, an in-memory token bucket that never waits
    httpx + SQLite read,   gauges (``floors.py``): bare httpx plus one SQLite read, one
    + SQLite write,        SQLite write transaction, one worker-thread hop (async); the
    + thread hop           "lower bounds" table adds them up into the least each target's
                           path costs on this machine

Then the rows outside that matrix (``paths.py``: POST to unprofiled and profiled hosts,
GET without caching headers over 4,000 requests, Redis hits, make_client() + close,
import quotaflow, requests-cache against bare requests, state round trips per miss) and
the Odds API history archive (``archive.py``: CPU share of a 200 KB miss, RSS after 1,000).

The replayed answers also carry ``Cache-Control: max-age=86400`` so that hishel alone
(RFC mode) may store them (quotaflow's freshness rule replaces it with its own), and a
``Date`` from the start of the run, as every origin server sends one (RFC 9110 §6.6.1;
the recordings leave it out so that a replay is never born old).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import importlib.util
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import archive
import attrs
import floors
import hishel
import httpx
import paths
from common import RESULTS, json_arg, ratios, spread, verdict, write_results
from hishel.httpx import AsyncCacheTransport, CacheTransport
from pyrate_limiter import Duration, Limiter, StateBucket, TokenBucket
from pyrate_limiter import Rate as PyrateRate
from pyrate_limiter.extras.httpx_limiter import (
    AsyncRateLimiterTransport,
    RateLimiterTransport,
)
from replay import API_KEY, Fixture, PlainRoutes, RouterPool, http_date, load

import quotaflow
from quotaflow_theoddsapi import PROFILE, OddsApiFreshness


def _big_slate() -> Fixture:
    """The NFL slate's request and headers on another sport's path, with a 200 KB body."""
    nfl = load("odds_nfl")
    return dataclasses.replace(
        nfl,
        name="odds_200k",
        url=nfl.url.copy_with(path=nfl.url.path.replace("americanfootball_nfl", "football_200k")),
        body=archive.slate(),
    )


SIZES = {"2 KB": load("event_odds_nfl"), "slate": load("odds_nfl"), "200 KB": _big_slate()}
REPLAY_HEADERS = {"cache-control": "max-age=86400", "date": http_date(time.time())}
# The real profile (cost, quota headers, freshness rule reading the body, secrets),
# with limits that never make a request wait and freshness that outlasts the run.
DAY = 86400
BENCH_PROFILE = attrs.evolve(
    PROFILE,
    rates=(quotaflow.Rate(10**9, per=1.0, burst=10**9),),
    freshness=OddsApiFreshness(
        live=DAY, within_1h=DAY, within_6h=DAY, within_24h=DAY, later=DAY, no_events=DAY
    ),
)
BLOCK = 20  # requests per block: rows and the floor alternate at this grain
ROWS = (
    "httpx (floor)",
    "httpx (A/A)",
    "quotaflow hit (hot)",
    "quotaflow hit (warm)",
    "quotaflow miss",
    "hishel hit",
    "hishel hit (no RFC)",
    "hishel miss",
    "httpx HTTPTransport",
    "pyrate-limiter",
    *floors.GAUGES,
)
FRUGAL = (
    "httpx-frugal: not measured. `pip install httpx-frugal` gets 0.2.1, which requires "
    "hishel<2 and replaces the hishel 2.x quotaflow runs on, so the two cannot share a process."
)


@dataclass
class Variant:
    group: str  # "sync 2 KB", "async slate", ...
    row: str
    run: Callable[[int], Any]  # returns None (sync) or an awaitable (async)
    share: float = 1.0  # fraction of --requests it makes per round (misses are slower)
    samples: list[float] = field(default_factory=list)  # us per request, one per round
    bases: list[float] = field(default_factory=list)  # the floor around each sample
    upstream: list[float] = field(default_factory=list)


def _quotaflow_kwargs(directory: Path, transport: Any, **extra: Any) -> dict[str, Any]:
    return {
        "profiles": [BENCH_PROFILE],
        "plugins": False,
        "state_dir": directory,
        "transport": transport,
        **extra,
    }


def _pyrate_limiter() -> Limiter:
    bucket = StateBucket([PyrateRate(10**9, Duration.SECOND, burst=10**9)], TokenBucket())
    return Limiter(bucket, buffer_ms=0)


def keyed(fixture: Fixture) -> httpx.URL:
    """The recorded request's URL with the key, as a caller sends it."""
    return fixture.url.copy_add_param("apiKey", API_KEY)


def _urls(fixture_url: httpx.URL) -> Callable[[], httpx.URL]:
    counter = iter(range(10**9))
    return lambda: fixture_url.copy_add_param("commenceTimeFrom", f"{next(counter)}")


def _sync_loop(client: httpx.Client, url: httpx.URL, fresh: bool) -> Callable[[int], None]:
    new_url = _urls(url)

    def run(requests: int) -> None:
        for _ in range(requests):
            client.get(new_url() if fresh else url)

    return run


def _async_loop(
    client: httpx.AsyncClient, url: httpx.URL, fresh: bool
) -> Callable[[int], Awaitable[None]]:
    new_url = _urls(url)

    async def run(requests: int) -> None:
        for _ in range(requests):
            await client.get(new_url() if fresh else url)

    return run


def sync_variants(
    group: str, url: httpx.URL, routes: PlainRoutes, directory: Path, stack: contextlib.ExitStack
) -> list[Variant]:
    mock = httpx.MockTransport(routes.handler)

    def client(transport: httpx.BaseTransport) -> httpx.Client:
        return stack.enter_context(httpx.Client(transport=transport))

    def ours(name: str, **extra: Any) -> httpx.Client:
        built = quotaflow.make_client(**_quotaflow_kwargs(directory / name, mock, **extra))
        return stack.enter_context(built)

    storage = hishel.SqliteStorage(database_path=directory / "hishel.db")
    pool = httpx.HTTPTransport(verify=False)  # no TLS ever happens: skip loading certificates
    pool._pool = RouterPool(routes.handler)  # type: ignore[assignment]
    limiter = stack.enter_context(_pyrate_limiter())
    limited = RateLimiterTransport(limiter, verify=False)
    limited._pool = RouterPool(routes.handler)  # type: ignore[assignment]
    clients = {
        "httpx (floor)": client(mock),
        "httpx (A/A)": client(mock),
        "quotaflow hit (hot)": ours("hot"),
        "quotaflow hit (warm)": ours("warm", hot_entries=0),
        "quotaflow miss": ours("miss"),
        "hishel hit": client(
            CacheTransport(mock, storage=storage, rfc=hishel.CacheOptions(shared=False))
        ),
        "hishel hit (no RFC)": client(
            CacheTransport(mock, storage=hishel.SqliteStorage(database_path=directory / "plain.db"))
        ),
        "hishel miss": client(
            CacheTransport(mock, storage=hishel.SqliteStorage(database_path=directory / "miss.db"))
        ),
        "httpx HTTPTransport": client(pool),
        "pyrate-limiter": client(limited),
    }
    found = []
    for row, made in clients.items():
        made.get(url)  # stores the answer the hit rows read
        missing = row in MISSES
        found.append(Variant(group, row, _sync_loop(made, url, missing), _share(group, row)))
    body = routes.handler(httpx.Request("GET", url)).content
    gauges = floors.sync_gauges(clients["httpx (floor)"], url, directory / "gauges", body, stack)
    found += [Variant(group, row, run) for row, run in gauges.items()]
    return found


# The rows going upstream each time (a new URL per request), and their share of a round.
MISSES = ("quotaflow miss", "hishel miss")


def _share(group: str, row: str) -> float:
    if row == "quotaflow miss":
        return 0.2 if "2 KB" in group else 0.1
    return 0.5 if row == "hishel miss" else 1.0


async def async_variants(
    group: str,
    url: httpx.URL,
    routes: PlainRoutes,
    directory: Path,
    stack: contextlib.AsyncExitStack,
) -> list[Variant]:
    mock = httpx.MockTransport(routes.handler)

    async def client(transport: httpx.AsyncBaseTransport) -> httpx.AsyncClient:
        return await stack.enter_async_context(httpx.AsyncClient(transport=transport))

    async def ours(name: str, **extra: Any) -> httpx.AsyncClient:
        built = quotaflow.make_async_client(**_quotaflow_kwargs(directory / name, mock, **extra))
        return await stack.enter_async_context(built)

    storage = hishel.AsyncSqliteStorage(database_path=directory / "hishel-async.db")
    pool = httpx.AsyncHTTPTransport(verify=False)
    pool._pool = RouterPool(routes.handler)  # type: ignore[assignment]
    limiter = stack.enter_context(_pyrate_limiter())
    limited = AsyncRateLimiterTransport(limiter, verify=False)
    limited._pool = RouterPool(routes.handler)  # type: ignore[assignment]
    cached = AsyncCacheTransport(mock, storage=storage, rfc=hishel.CacheOptions(shared=False))
    clients = {
        "httpx (floor)": await client(mock),
        "httpx (A/A)": await client(mock),
        "quotaflow hit (hot)": await ours("hot"),
        "quotaflow hit (warm)": await ours("warm", hot_entries=0),
        "quotaflow miss": await ours("miss"),
        "hishel hit": await client(cached),
        "hishel hit (no RFC)": await client(
            AsyncCacheTransport(
                mock, storage=hishel.AsyncSqliteStorage(database_path=directory / "plain-async.db")
            )
        ),
        "hishel miss": await client(
            AsyncCacheTransport(
                mock, storage=hishel.AsyncSqliteStorage(database_path=directory / "miss-async.db")
            )
        ),
        "httpx HTTPTransport": await client(pool),
        "pyrate-limiter": await client(limited),
    }
    found = []
    for row, made in clients.items():
        await made.get(url)
        missing = row in MISSES
        found.append(Variant(group, row, _async_loop(made, url, missing), _share(group, row)))
    body = routes.handler(httpx.Request("GET", url)).content
    floor = clients["httpx (floor)"]
    gauges = floors.async_gauges(floor, url, directory / "gauges", body, stack)
    found += [Variant(group, row, run) for row, run in gauges.items()]
    return found


async def measure(
    directory: Path,
    requests: int,
    rounds: int,
    routes: PlainRoutes,
    only: frozenset[str] | None = None,
) -> list[Variant]:
    """Per round, for each row: blocks of BLOCK requests of the floor and of the row,
    alternating; the row's sample is divided by the floor blocks it alternated with.
    Groups and rows run in reverse order every other round."""
    variants: list[Variant] = []
    with contextlib.ExitStack() as stack:
        async with contextlib.AsyncExitStack() as astack:
            for size, fixture in SIZES.items():
                url = keyed(fixture)
                variants += sync_variants(
                    f"sync {size}", url, routes, directory / f"sync-{size[:2]}", stack
                )
                variants += await async_variants(
                    f"async {size}", url, routes, directory / f"async-{size[:2]}", astack
                )
            if only is not None:  # --rows: the floor and the A/A gauge, then those rows
                keep_rows = only | {"httpx (floor)", "httpx (A/A)"}
                variants = [variant for variant in variants if variant.row in keep_rows]
            groups: dict[str, list[Variant]] = {}
            for variant in variants:
                groups.setdefault(variant.group, []).append(variant)

            async def timed(variant: Variant, n: int) -> float:
                """Seconds for n requests; upstream calls per request noted."""
                routes.reset()
                started = time.perf_counter()
                result = variant.run(n)
                if result is not None:
                    await result
                elapsed = time.perf_counter() - started
                variant.upstream.append(routes.calls.call_count / n)
                return elapsed

            # Round 0 warms every path up and is not kept.
            for round_number in range(rounds + 1):
                keep = round_number > 0
                gc.collect()  # once a round: garbage left by one round is not the next's cost
                order = list(groups.values())
                if round_number % 2:
                    order.reverse()
                size = max(1, min(BLOCK, requests))
                blocks = max(1, requests // size) if keep else 1
                for members in order:
                    floor, others = members[0], members[1:]
                    if round_number % 2:
                        others = others[::-1]
                    for variant in others:
                        # Blocks of the row and of the floor alternate: what the machine does
                        # meanwhile (other processes, frequency changes) hits both alike.
                        block = max(1, round(size * variant.share))
                        mine = base = 0.0
                        for _ in range(blocks):
                            base += await timed(floor, size)
                            mine += await timed(variant, block)
                        if keep:
                            base_us = base / (blocks * size) * 1e6
                            variant.samples.append(mine / (blocks * block) * 1e6)
                            variant.bases.append(base_us)
                            floor.samples.append(base_us)
                    if keep:
                        floor.bases = list(floor.samples)
    routes.reset()
    for variant in variants:  # its client (and what its hot tier holds) can go now
        variant.run = _done
    return variants


def _done(requests: int) -> None:
    raise RuntimeError("measured already")


def _routes(copy: bool = False) -> PlainRoutes:
    """The plain routes answering every size (the 200 KB slate is made up, not recorded)."""
    recorded = [f.name for f in SIZES.values() if f.name != "odds_200k"]
    routes = PlainRoutes(recorded, headers=REPLAY_HEADERS, copy=copy)
    routes.add(SIZES["200 KB"], REPLAY_HEADERS)
    return routes


def memory(directory: Path, entries: int, routes: PlainRoutes) -> dict[str, dict[str, float]]:
    """Python heap (tracemalloc) and disk per cached entry, with and without the hot tier."""
    found: dict[str, dict[str, float]] = {}
    for size, fixture in SIZES.items():
        count = entries if size == "2 KB" else max(1, entries // 4)
        per: dict[str, float] = {"body_bytes": float(len(fixture.body))}
        for label, extra in (("total", {}), ("warm_only", {"hot_entries": 0})):
            state = directory / f"memory-{size[:2]}-{label}"
            mock = httpx.MockTransport(routes.handler)
            with quotaflow.make_client(**_quotaflow_kwargs(state, mock, **extra)) as client:
                new_url = _urls(keyed(fixture))
                for _ in range(3):  # everything created on first use exists before we count
                    client.get(new_url())
                routes.reset()
                disk_before = _disk(state)
                gc.collect()
                tracemalloc.start()
                before = tracemalloc.get_traced_memory()[0]
                for _ in range(count):
                    client.get(new_url())
                routes.reset()
                gc.collect()
                after = tracemalloc.get_traced_memory()[0]
                tracemalloc.stop()
                per[f"{label}_heap_bytes"] = (after - before) / count
                per[f"{label}_disk_bytes"] = (_disk(state) - disk_before) / count
        per["hot_tier_bytes"] = per["total_heap_bytes"] - per["warm_only_heap_bytes"]
        found[size] = per
    return found


def _disk(directory: Path) -> int:
    """Bytes of the state files, write-ahead logs folded in first."""
    for path in directory.glob("*.db"):
        with contextlib.closing(sqlite3.connect(path)) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(path.stat().st_size for path in directory.glob("*.db*"))


def report(variants: list[Variant], rounds: int, requests: int) -> dict[str, Any]:
    groups = list(dict.fromkeys(variant.group for variant in variants))
    rows: dict[str, dict[str, dict[str, float]]] = {group: {} for group in groups}
    for variant in variants:
        rows[variant.group][variant.row] = {
            "us": statistics.median(variant.samples),
            **ratios(variant.samples, variant.bases),
            "upstream_per_request": statistics.median(variant.upstream),
        }
    print(
        f"overhead per request: ratio to bare httpx, median [min-max] of {rounds} rounds "
        f"({requests} requests per round; misses fewer)"
    )
    print(f"{'row':<22}" + "".join(f"{group:>22}" for group in groups))
    for row in ROWS:
        if any(row in rows[g] for g in groups):  # the thread hop: async groups only
            cells = (spread(rows[g][row]) if row in rows[g] else "-" for g in groups)
            print(f"{row:<22}" + "".join(f"{cell:>22}" for cell in cells))
    print(
        f"{'floor, us/request':<22}"
        + "".join(f"{rows[g]['httpx (floor)']['us']:>22.0f}" for g in groups)
    )
    suspicious = [
        f"{group}/{row}"
        for group in groups
        for row, values in rows[group].items()
        if ("hit" in row and values["upstream_per_request"] > 0)
        or (
            row
            not in (
                "quotaflow hit (hot)",
                "quotaflow hit (warm)",
                "hishel hit",
                "hishel hit (no RFC)",
            )
            and values["upstream_per_request"] < 1
        )
    ]
    if suspicious:
        print(f"WARNING: rows that did not reach upstream as expected: {', '.join(suspicious)}")
    return rows


def targets(
    variants: list[Variant],
    rows: dict[str, Any],
    found_paths: dict[str, Any],
    found_archive: dict[str, Any],
) -> list[dict[str, Any]]:
    """Issue 16's targets, each against this run's figure (ratios to bare httpx)."""
    by_key = {(variant.group, variant.row): variant for variant in variants}

    def versus(group: str, row: str, base: str) -> dict[str, float]:
        """Per round, (row / its floor) / (base / its floor)."""
        mine, theirs = by_key[(group, row)], by_key[(group, base)]
        return ratios(
            [v / b for v, b in zip(mine.samples, mine.bases, strict=True)],
            [v / b for v, b in zip(theirs.samples, theirs.bases, strict=True)],
        )

    found: list[tuple[str, dict[str, float], float]] = []
    for group in rows:
        found.append(
            (f"hot hit <= 1.05x httpx ({group})", rows[group]["quotaflow hit (hot)"], 1.05)
        )
    for group in rows:
        limit = 1.30 if group.startswith("sync") else 1.50
        found.append(
            (
                f"warm hit <= {limit:.2f}x httpx ({group})",
                rows[group]["quotaflow hit (warm)"],
                limit,
            )
        )
    for group in rows:
        limit = 3.0 if group.startswith("sync") else 4.0
        found.append(
            (f"miss <= {limit:.0f}x httpx ({group})", rows[group]["quotaflow miss"], limit)
        )
    for group in ("sync 2 KB", "sync slate", "async 2 KB"):
        found.append(
            (
                f"warm hit <= 1.10x hishel hit ({group})",
                versus(group, "quotaflow hit (warm)", "hishel hit"),
                1.10,
            )
        )
    requests = found_paths["requests"]
    for name, limit in (
        ("Redis hit", 2.0),
        ("POST, unprofiled host", 1.05),
        ("POST, profiled host", 1.5),
    ):
        for group, row in requests.get(name, {}).items():
            found.append((f"{name} <= {limit}x httpx ({group})", row, limit))
    for label, row in found_paths["uncached_growth"].items():
        found.append((f"GET no cache headers <= 1.05x ({label})", row, 1.05))
    for group, row in found_paths["build"].items():
        found.append((f"make_client() + close <= 0.5x httpx ({group})", row, 0.5))
    found.append(("import quotaflow <= 1.5x import httpx", found_paths["import"], 1.5))
    for mode, cpu in found_archive["cpu"].items():
        share = {
            "ratio": cpu["share"],
            "ratio_min": cpu["share_min"],
            "ratio_max": cpu["share_max"],
        }
        found.append((f"archive worker CPU <= 0.10 of a 200 KB miss ({mode})", share, 0.10))
    print(f"\n{'target (issue 16)':<52}{'measured':>20}  verdict")
    results = []
    for name, row, limit in found:
        ok = row["ratio"] <= limit
        print(f"{name:<52}{spread(row):>20}  {verdict(ok)}")
        results.append({"target": name, "limit": limit, **row, "ok": ok})
    return results


def print_memory(found: dict[str, dict[str, float]]) -> None:
    print(
        f"\n{'memory per cached entry':<26}{'body':>9}{'hot tier':>10}"
        f"{'heap total':>12}{'heap warm only':>16}{'disk':>9}"
    )
    for size, per in found.items():
        print(
            f"{size:<26}{per['body_bytes'] / 1024:>8.1f}K{per['hot_tier_bytes'] / 1024:>9.1f}K"
            f"{per['total_heap_bytes'] / 1024:>11.1f}K{per['warm_only_heap_bytes'] / 1024:>15.1f}K"
            f"{per['total_disk_bytes'] / 1024:>8.1f}K"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--requests", type=int, default=200, help="requests per row per round (blocks of 20)"
    )
    parser.add_argument("--rounds", type=int, default=20, help="rounds (medians are kept)")
    parser.add_argument(
        "--memory-entries", type=int, default=400, help="entries cached to measure memory"
    )
    parser.add_argument(
        "--json",
        type=json_arg,
        default=RESULTS,
        help="merge the results into this file ('-': none; default: %(default)s)",
    )
    parser.add_argument(
        "--growth", type=int, default=4000, help="requests before the later uncached GET row"
    )
    parser.add_argument("--builds", type=int, default=5, help="clients built per block")
    parser.add_argument("--imports", type=int, default=20, help="interpreters per import row")
    parser.add_argument("--trips", type=int, default=50, help="misses counting state round trips")
    parser.add_argument(
        "--archive-misses", type=int, default=1000, help="200 KB misses for the archive's RSS"
    )
    parser.add_argument(
        "--rows",
        help="comma-separated rows to measure beside the floor and the A/A gauge, and "
        "nothing else (no memory, paths, archive or targets; nothing written)",
    )
    args = parser.parse_args(argv)
    routes = _routes()
    if args.rows:
        only = frozenset(row.strip() for row in args.rows.split(","))
        if unknown := only - set(ROWS):
            parser.error(f"unknown rows: {', '.join(sorted(unknown))}")
        with tempfile.TemporaryDirectory() as tmp:
            variants = asyncio.run(measure(Path(tmp), args.requests, args.rounds, routes, only))
        report(variants, args.rounds, args.requests)
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        variants = asyncio.run(measure(Path(tmp), args.requests, args.rounds, routes))
        found_memory = memory(Path(tmp), args.memory_entries, _routes(copy=True))
        rows = report(variants, args.rounds, args.requests)
        print_memory(found_memory)
        # What the rows above left behind must not slow what follows: a big heap makes
        # every collection the rows below trigger (on any thread) costlier.
        gc.collect()
        gc.freeze()  # undone below, once the archive's rows are measured
        blocks = max(1, args.requests // BLOCK)
        found_paths = paths.run(
            Path(tmp),
            BENCH_PROFILE,
            rounds=args.rounds,
            blocks=blocks,
            block=min(BLOCK, args.requests),
            growth=args.growth,
            builds=args.builds,
            imports=args.imports,
            misses=args.trips,
        )
    try:
        found_archive = archive.run(
            args.archive_misses, max(2, args.rounds // 2), max(2, min(50, args.requests // 4))
        )
    finally:
        gc.unfreeze()  # a process running main() (a test) goes on as before
    verdicts = targets(variants, rows, found_paths, found_archive)
    requests = found_paths["requests"]
    redis_gauge = requests.get("Redis GET alone, added to httpx", {})
    lower = floors.bounds(rows, redis_gauge, requests["POST, profiled host"])
    floors.print_bounds(lower)
    available = importlib.util.find_spec("httpx_frugal") is not None
    print(f"\n{FRUGAL}{' (It is importable here, yet still not measured.)' if available else ''}")
    write_results(
        args.json,
        "overhead",
        {
            "rounds": args.rounds,
            "requests": args.requests,
            "rows": rows,
            "targets": verdicts,
            "bounds": [dataclasses.asdict(bound) for bound in lower],
            "memory": found_memory,
            "paths": found_paths,
            "archive": found_archive,
            "httpx_frugal": FRUGAL,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
