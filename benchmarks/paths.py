"""The rows of overhead.py outside its body-size matrix (issue 16's table), each a ratio
to bare httpx over the same plain ``httpx.MockTransport`` answer, in strictly alternating
blocks (the row, then its floor; which goes first swaps every round), with an A/A row.

Rows (sync and async unless said):
    POST, unprofiled host         an uncacheable request nothing needs to see
    POST, profiled host           the odds profile's limiter and ledger (POST is not cached)
    GET no cache headers,         the same URL on a host with no profile, answered without
      unprofiled, first / 4,000     caching headers: measured over the first requests, then
                                    again after 4,000 (sync); it must stay flat
    Redis hit                     make_client(redis_url=..., hot_entries=0): the stored
                                    answer read from Redis (skipped when Redis is not there)
    Redis GET alone, added        bare httpx plus one redis-py GET of 2 KB: the least a
      to httpx                      Redis hit can cost (its round trip)
    make_client() + close         the default client (plugins, real transport) against
                                    httpx.Client() + close, per client built
    import quotaflow              a fresh interpreter's wall time, against import httpx
    requests-cache hit            CachedSession (memory, SQLite, Redis) against bare
                                    requests.Session, both over requests-mock (sync only)
Also: state round trips per miss, the SQL statements (and write transactions) each file
sees per miss, counted with ``sqlite3``'s trace callback on every connection opened, and
an async miss's hops to a worker thread (``anyio.to_thread.run_sync`` calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from common import ratios, spread
from replay import load

import quotaflow

UNPROFILED = "https://api.unprofiled.test/v1/items"
PROFILED_HOST = "api.the-odds-api.com"
ODDS_BODY = load("event_odds_nfl").body
PROFILED = "https://api.the-odds-api.com/v4/sports/americanfootball_nfl/odds"
REDIS_URL = os.environ.get("QUOTAFLOW_BENCH_REDIS", "redis://127.0.0.1:6379/0")
BODY = b'{"items": [' + b", ".join(b'{"id": %d, "name": "item"}' % n for n in range(80)) + b"]}"
# Honest Odds API quota headers, for the odds host's ledger; other hosts ignore them.
HEADERS = {
    "content-type": "application/json",
    "x-requests-remaining": "1000000",
    "x-requests-used": "1",
    "x-requests-last": "1",
}
Run = Callable[[int], Any]  # returns None (sync) or an awaitable (async)


def answer(request: httpx.Request) -> httpx.Response:
    """Every request: 2 KB of JSON, no caching headers (the odds host: one game's odds,
    which its freshness rule reads, and quota headers)."""
    body = ODDS_BODY if request.url.host == PROFILED_HOST else BODY
    return httpx.Response(200, content=body, headers=HEADERS)


def cached_answer(request: httpx.Request) -> httpx.Response:
    """The same with a day's freshness (what a Redis hit reads back)."""
    response = answer(request)
    response.headers["cache-control"] = "max-age=86400"
    return response


@dataclass
class Pair:
    """One row: its requests and its floor's, measured in alternating blocks."""

    name: str
    group: str
    row: Run
    floor: Run
    block: int
    samples: list[float] = field(default_factory=list)
    bases: list[float] = field(default_factory=list)

    def result(self) -> dict[str, float]:
        return {
            "us": statistics.median(self.samples),
            "floor_us": statistics.median(self.bases),
            **ratios(self.samples, self.bases),
        }


async def _timed(run: Run, n: int) -> float:
    started = time.perf_counter()
    result = run(n)
    if result is not None:
        await result
    return (time.perf_counter() - started) / n * 1e6


async def alternate(pairs: list[Pair], rounds: int, blocks: int) -> None:
    """Per round and row: ``blocks`` blocks of the row and of its floor, alternating (the
    floor first on even rounds); round 0 warms up and is not kept."""
    for round_number in range(rounds + 1):
        order = pairs if round_number % 2 else pairs[::-1]
        for pair in order:
            mine = base = 0.0
            for _ in range(blocks if round_number else 1):
                if round_number % 2:
                    mine += await _timed(pair.row, pair.block)
                    base += await _timed(pair.floor, pair.block)
                else:
                    base += await _timed(pair.floor, pair.block)
                    mine += await _timed(pair.row, pair.block)
            if round_number:
                pair.samples.append(mine)
                pair.bases.append(base)


def _sync(client: httpx.Client, method: str, url: str, **kw: Any) -> Run:
    def run(n: int) -> None:
        for _ in range(n):
            client.request(method, url, **kw)

    return run


def _async(client: httpx.AsyncClient, method: str, url: str, **kw: Any) -> Run:
    async def run(n: int) -> None:
        for _ in range(n):
            await client.request(method, url, **kw)

    return run


def _ours(directory: Path, profile: Any, handler: Any = answer, **extra: Any) -> dict[str, Any]:
    return {
        "profiles": [profile],
        "plugins": False,
        "state_dir": directory,
        "transport": httpx.MockTransport(handler),
        **extra,
    }


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


@contextlib.contextmanager
def redis_prefix(url: str) -> Iterator[str]:
    """A prefix of this run's own, its keys deleted afterwards (never anyone else's)."""
    import redis

    prefix = f"quotaflow-bench-{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.unlink(*keys[start : start + 1000])
        client.close()


async def redis_gauges(
    stack: contextlib.ExitStack,
    astack: contextlib.AsyncExitStack,
    url: str,
    prefix: str,
    floor: httpx.Client,
    afloor: httpx.AsyncClient,
) -> tuple[Run, Run]:
    """Bare httpx's request plus one redis-py ``GET`` of a stored answer's size: the least
    a Redis hit costs with no answer kept in process memory (``hot_entries=0``)."""
    import redis
    import redis.asyncio

    key = f"{prefix}:gauge"
    client = stack.enter_context(contextlib.closing(redis.Redis.from_url(url)))
    aclient = redis.asyncio.Redis.from_url(url)
    astack.push_async_callback(aclient.aclose)
    client.set(key, BODY)

    def run(n: int) -> None:
        for _ in range(n):
            floor.get(UNPROFILED)
            client.get(key)

    async def arun(n: int) -> None:
        for _ in range(n):
            await afloor.get(UNPROFILED)
            await aclient.get(key)

    return run, arun


async def request_rows(
    directory: Path, profile: Any, rounds: int, blocks: int, block: int, redis_url: str | None
) -> dict[str, dict[str, dict[str, float]]]:
    """The request rows, sync and async, alternating with bare httpx."""
    key = {"params": {"apiKey": "key-not-real"}}
    post = {"content": b'{"query": 1}'}
    mock = httpx.MockTransport(answer)
    pairs: list[Pair] = []
    with contextlib.ExitStack() as stack:
        async with contextlib.AsyncExitStack() as astack:
            floor = stack.enter_context(httpx.Client(transport=mock))
            afloor = await astack.enter_async_context(httpx.AsyncClient(transport=mock))
            same = stack.enter_context(httpx.Client(transport=mock))
            asame = await astack.enter_async_context(httpx.AsyncClient(transport=mock))
            ours = stack.enter_context(quotaflow.make_client(**_ours(directory / "s", profile)))
            aours = await astack.enter_async_context(
                quotaflow.make_async_client(**_ours(directory / "a", profile))
            )
            get = _sync(floor, "GET", UNPROFILED)
            aget = _async(afloor, "GET", UNPROFILED)
            pairs += [
                Pair("httpx (A/A)", "sync", _sync(same, "GET", UNPROFILED), get, block),
                Pair("httpx (A/A)", "async", _async(asame, "GET", UNPROFILED), aget, block),
                Pair(
                    "POST, unprofiled host",
                    "sync",
                    _sync(ours, "POST", UNPROFILED, **post),
                    _sync(floor, "POST", UNPROFILED, **post),
                    block,
                ),
                Pair(
                    "POST, unprofiled host",
                    "async",
                    _async(aours, "POST", UNPROFILED, **post),
                    _async(afloor, "POST", UNPROFILED, **post),
                    block,
                ),
                Pair(
                    "POST, profiled host",
                    "sync",
                    _sync(ours, "POST", PROFILED, **post, **key),
                    _sync(floor, "POST", PROFILED, **post, **key),
                    block,
                ),
                Pair(
                    "POST, profiled host",
                    "async",
                    _async(aours, "POST", PROFILED, **post, **key),
                    _async(afloor, "POST", PROFILED, **post, **key),
                    block,
                ),
            ]
            if redis_url:
                prefix = stack.enter_context(redis_prefix(redis_url))
                redis = {"redis_url": redis_url, "redis_prefix": prefix, "hot_entries": 0}
                cached = httpx.MockTransport(cached_answer)
                rfloor = stack.enter_context(httpx.Client(transport=cached))
                arfloor = await astack.enter_async_context(httpx.AsyncClient(transport=cached))
                rours = stack.enter_context(
                    quotaflow.make_client(
                        **_ours(directory / "rs", profile, cached_answer, **redis)
                    )
                )
                arours = await astack.enter_async_context(
                    quotaflow.make_async_client(
                        **_ours(directory / "ra", profile, cached_answer, **redis)
                    )
                )
                rours.get(UNPROFILED)
                await arours.get(UNPROFILED)
                gauge, agauge = await redis_gauges(
                    stack, astack, redis_url, prefix, rfloor, arfloor
                )
                pairs += [
                    Pair(
                        "Redis GET alone, added to httpx",
                        "sync",
                        gauge,
                        _sync(rfloor, "GET", UNPROFILED),
                        block,
                    ),
                    Pair(
                        "Redis GET alone, added to httpx",
                        "async",
                        agauge,
                        _async(arfloor, "GET", UNPROFILED),
                        block,
                    ),
                    Pair(
                        "Redis hit",
                        "sync",
                        _sync(rours, "GET", UNPROFILED),
                        _sync(rfloor, "GET", UNPROFILED),
                        block,
                    ),
                    Pair(
                        "Redis hit",
                        "async",
                        _async(arours, "GET", UNPROFILED),
                        _async(arfloor, "GET", UNPROFILED),
                        block,
                    ),
                ]
            await alternate(pairs, rounds, blocks)
    found: dict[str, dict[str, dict[str, float]]] = {}
    for pair in pairs:
        found.setdefault(pair.name, {})[pair.group] = pair.result()
    return found


async def uncached_growth(
    directory: Path, profile: Any, after: int, rounds: int, block: int
) -> dict[str, dict[str, float]]:
    """The same unprofiled URL without caching headers, sync, through one client on a new
    state directory: its cost over the first requests, then again after ``after``."""
    mock = httpx.MockTransport(answer)
    found: dict[str, dict[str, float]] = {}
    with (
        httpx.Client(transport=mock) as floor,
        quotaflow.make_client(**_ours(directory / "growth", profile)) as ours,
    ):
        row, base = _sync(ours, "GET", UNPROFILED), _sync(floor, "GET", UNPROFILED)
        first = Pair("first", "sync", row, base, block)
        await alternate([first], rounds, 1)
        made = (rounds + 1) * block
        found[f"requests 1-{made:,}"] = first.result()
        if made < after:
            row(after - made)
        later = Pair("later", "sync", row, base, block)
        await alternate([later], rounds, 1)
        found[f"after {max(after, made):,}"] = later.result()
    return found


def build_rows(directory: Path, rounds: int, builds: int) -> dict[str, dict[str, float]]:
    """make_client() + close against httpx.Client() + close, per client (the defaults:
    plugins discovered, a real transport; one state directory, as a program has)."""
    state = directory / "build"

    def ours(n: int) -> None:
        for _ in range(n):
            quotaflow.make_client(state_dir=state).close()

    def bare(n: int) -> None:
        for _ in range(n):
            httpx.Client().close()

    async def aours(n: int) -> None:
        for _ in range(n):
            await quotaflow.make_async_client(state_dir=state).aclose()

    async def abare(n: int) -> None:
        for _ in range(n):
            await httpx.AsyncClient().aclose()

    pairs = [
        Pair("make_client() + close", "sync", ours, bare, builds),
        Pair("make_client() + close", "async", aours, abare, builds),
    ]
    asyncio.run(alternate(pairs, rounds, 1))
    return {pair.group: pair.result() for pair in pairs}


def import_rows(runs: int) -> dict[str, float]:
    """Wall time of ``python -c 'import quotaflow'`` against ``import httpx``, alternating,
    each in a fresh interpreter (``-X importtime`` would slow both)."""

    def wall(module: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
        return time.perf_counter() - started

    wall("quotaflow")  # the first run also warms the file cache
    ours, bare = [], []
    for n in range(runs):
        for module in ("quotaflow", "httpx") if n % 2 else ("httpx", "quotaflow"):
            (ours if module == "quotaflow" else bare).append(wall(module) * 1e3)
    return {
        "ms": statistics.median(ours),
        "floor_ms": statistics.median(bare),
        **ratios(ours, bare),
    }


def requests_cache_rows(directory: Path, rounds: int, blocks: int, block: int) -> dict[str, Any]:
    """requests-cache hits (memory, SQLite, Redis) against bare requests, both over
    requests-mock; None when requests-cache or requests-mock is not installed."""
    if not all(importlib.util.find_spec(name) for name in ("requests_cache", "requests_mock")):
        return {}
    import requests
    import requests_cache
    import requests_mock

    def mounted(session: requests.Session) -> requests.Session:
        adapter = requests_mock.Adapter()
        adapter.register_uri(
            "GET", UNPROFILED, content=BODY, headers={**HEADERS, "cache-control": "max-age=86400"}
        )
        session.mount("https://", adapter)
        return session

    def run(session: requests.Session) -> Run:
        def go(n: int) -> None:
            for _ in range(n):
                session.get(UNPROFILED)

        return go

    sessions: dict[str, Any] = {
        "memory": requests_cache.CachedSession(backend="memory"),
        "SQLite": requests_cache.CachedSession(str(directory / "requests-cache"), backend="sqlite"),
    }
    if redis_reachable(REDIS_URL):
        import redis

        namespace = f"quotaflow-bench-{uuid.uuid4().hex[:12]}"
        sessions["Redis"] = requests_cache.CachedSession(
            namespace, backend="redis", connection=redis.Redis.from_url(REDIS_URL)
        )
    bare = mounted(requests.Session())
    pairs = []
    for name, session in sessions.items():
        mounted(session).get(UNPROFILED)
        pairs.append(Pair(f"requests-cache hit ({name})", "sync", run(session), run(bare), block))
    try:
        asyncio.run(alternate(pairs, rounds, blocks))
    finally:
        if "Redis" in sessions:
            sessions["Redis"].cache.clear()
        for session in sessions.values():
            session.close()
    return {pair.name: pair.result() for pair in pairs}


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


@contextlib.contextmanager
def sql_traced() -> Iterator[Counter[tuple[str, str]]]:
    """Every sqlite3 connection opened meanwhile counts its statements by file and kind
    (``statements``, ``writes``: BEGIN IMMEDIATE/EXCLUSIVE or a bare BEGIN, and a write
    outside a transaction, which SQLite commits as one of its own)."""
    counts: Counter[tuple[str, str]] = Counter()
    connect = sqlite3.connect

    def traced(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = connect(database, *args, **kwargs)
        name = Path(str(database)).name.split("?")[0]

        def count(statement: str) -> None:
            counts[(name, "statements")] += 1
            head = statement.lstrip().upper()
            begun = head.startswith("BEGIN") and "DEFERRED" not in head
            if begun or (head.startswith(_WRITES) and not connection.in_transaction):
                counts[(name, "writes")] += 1

        connection.set_trace_callback(count)
        return connection

    sqlite3.connect = traced  # type: ignore[assignment]
    try:
        yield counts
    finally:
        sqlite3.connect = connect


@contextlib.contextmanager
def redis_traced() -> Iterator[Counter[tuple[str, str]]]:
    """Every command (or pipeline) sent to Redis meanwhile counts as one round trip."""
    counts: Counter[tuple[str, str]] = Counter()
    from redis.asyncio.connection import AbstractConnection as AsyncConnection
    from redis.connection import AbstractConnection

    send, asend = AbstractConnection.send_packed_command, AsyncConnection.send_packed_command

    def traced(self: Any, command: Any, check_health: bool = True) -> None:
        counts[("redis", "round trips (state and cache)")] += 1
        send(self, command, check_health)

    async def atraced(self: Any, command: Any, check_health: bool = True) -> None:
        counts[("redis", "round trips (state and cache)")] += 1
        await asend(self, command, check_health)

    AbstractConnection.send_packed_command = traced  # type: ignore[method-assign]
    AsyncConnection.send_packed_command = atraced  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        AbstractConnection.send_packed_command = send  # type: ignore[method-assign]
        AsyncConnection.send_packed_command = asend  # type: ignore[method-assign]


def _backend_count(client: Any) -> int | None:
    """The state backend's own count of its round trips (its transactions, Redis commands
    and scripts), where this quotaflow keeps one; None where it does not."""
    try:
        from quotaflow._plan import _PARTS

        return int(_PARTS[client].backend.round_trips())
    except (ImportError, KeyError, AttributeError, TypeError):
        return None


@contextlib.contextmanager
def thread_hops() -> Iterator[list[int]]:
    """Calls meanwhile to ``anyio.to_thread.run_sync`` (every hop of quotaflow's and of
    the storages' to a worker thread goes through it), counted in the one-item list."""
    import anyio.to_thread

    hops = [0]
    run_sync = anyio.to_thread.run_sync

    async def counted(*args: Any, **kwargs: Any) -> Any:
        hops[0] += 1
        return await run_sync(*args, **kwargs)

    anyio.to_thread.run_sync = counted  # type: ignore[assignment]
    try:
        yield hops
    finally:
        anyio.to_thread.run_sync = run_sync


def round_trips(
    directory: Path, profile: Any, misses: int, redis_url: str | None = None
) -> dict[str, dict[str, float]]:
    """SQL statements and write transactions per miss, per file, sync and async; with
    ``redis_url``, also the same misses on Redis state, counting round trips to Redis."""
    found: dict[str, dict[str, float]] = {}
    fresh = (f"{PROFILED}?apiKey=key-not-real&commenceTimeFrom={n}" for n in range(10**9))
    backends: dict[str, dict[str, Any]] = {"": {}}
    with contextlib.ExitStack() as stack:
        counts = stack.enter_context(sql_traced())
        if redis_url is not None:
            prefix = stack.enter_context(redis_prefix(redis_url))
            backends["Redis "] = {"redis_url": redis_url, "redis_prefix": prefix}
            redis_counts = stack.enter_context(redis_traced())
        else:
            redis_counts = Counter[tuple[str, str]]()

        def per(client: Any, before: int | None) -> dict[str, float]:
            merged = counts + redis_counts
            found = {f"{name} {kind}": n / misses for (name, kind), n in sorted(merged.items())}
            after = _backend_count(client)
            if before is not None and after is not None:
                found["state backend's own count"] = (after - before) / misses
            return found

        for label, extra in backends.items():
            kwargs = _ours(directory / f"trips{len(label)}", profile, cached_answer, **extra)
            with quotaflow.make_client(**kwargs) as ours:
                ours.get(next(fresh))
                counts.clear()
                redis_counts.clear()
                before = _backend_count(ours)
                for _ in range(misses):
                    ours.get(next(fresh))
                found[f"{label}sync"] = per(ours, before)

            async def run_async(kwargs: dict[str, Any] = kwargs, label: str = label) -> None:
                kwargs = {**kwargs, "state_dir": Path(str(kwargs["state_dir"]) + "-async")}
                async with quotaflow.make_async_client(**kwargs) as aours:
                    await aours.get(next(fresh))
                    counts.clear()
                    redis_counts.clear()
                    before = _backend_count(aours)
                    with thread_hops() as hops:
                        for _ in range(misses):
                            await aours.get(next(fresh))
                    found[f"{label}async"] = per(aours, before)
                    found[f"{label}async"]["worker-thread hops"] = hops[0] / misses

            asyncio.run(run_async())
    return found


def run(
    directory: Path,
    profile: Any,
    *,
    rounds: int,
    blocks: int,
    block: int,
    growth: int,
    builds: int,
    imports: int,
    misses: int,
) -> dict[str, Any]:
    """All of the above; prints its tables and returns the numbers."""
    redis_url = REDIS_URL if redis_reachable(REDIS_URL) else None
    found: dict[str, Any] = {
        "requests": asyncio.run(request_rows(directory, profile, rounds, blocks, block, redis_url)),
        "uncached_growth": asyncio.run(uncached_growth(directory, profile, growth, rounds, block)),
        "build": build_rows(directory, rounds, builds),
        "import": import_rows(imports),
        "requests_cache": requests_cache_rows(directory, rounds, blocks, block),
        "round_trips": round_trips(directory, profile, misses, redis_url),
        "redis": redis_url is not None,
    }
    print(
        f"\nother paths: ratio to bare httpx (same MockTransport answer), median [min-max] of "
        f"{rounds} rounds, blocks of {block} alternating"
    )
    print(f"{'row':<48}{'sync':>22}{'async':>22}")
    for name, groups in found["requests"].items():
        cells = "".join(
            f"{spread(groups[g]) if g in groups else '-':>22}" for g in ("sync", "async")
        )
        print(f"{name:<48}{cells}")
    if not found["redis"]:
        print(f"{'Redis hit':<48}{'(no Redis at ' + REDIS_URL + ')':>44}")
    for label, row in found["uncached_growth"].items():
        print(f"{'GET no cache headers, unprofiled, ' + label:<48}{spread(row):>22}")
    build = found["build"]
    print(
        f"{'make_client() + close vs httpx.Client()':<48}{spread(build['sync']):>22}"
        f"{spread(build['async']):>22}"
    )
    print(
        f"{'':<48}{build['sync']['us'] / 1e3:>19.2f} ms{build['async']['us'] / 1e3:>19.2f} ms"
        f"  (bare {build['sync']['floor_us'] / 1e3:.2f} / {build['async']['floor_us'] / 1e3:.2f})"
    )
    imported = found["import"]
    print(
        f"{'import quotaflow vs import httpx':<48}{spread(imported):>22}"
        f"   {imported['ms']:.0f} vs {imported['floor_ms']:.0f} ms (wall, fresh interpreter)"
    )
    for name, row in found["requests_cache"].items():
        print(f"{name + ' vs bare requests':<48}{spread(row):>22}")
    print(
        "\nstate round trips per miss (SQL statements; writes = write transactions begun or"
        " committed on their own; async: worker-thread hops)"
    )
    for group, counts in found["round_trips"].items():
        cells = ", ".join(f"{name} {value:.1f}" for name, value in counts.items())
        print(f"  {group}: {cells}")
    return found
