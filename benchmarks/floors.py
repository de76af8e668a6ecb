"""What the parts every quotaflow path must use cost alone: the gauge rows that show how
low each of issue 16's ratios can go on this machine.

Each gauge is bare httpx's request (the floor itself) plus the one thing a path cannot
skip, so its ratio to the floor is 1 + that thing's cost. They run in ``overhead.py``'s
alternation beside the rows they bound (and ``paths.py``'s Redis GET beside the Redis
hit):

    httpx + SQLite read    one indexed read of the body from a WAL SQLite file: the
                           least a warm hit does (the hot tier aside)
    httpx + SQLite write   one write transaction changing one small row (WAL,
                           synchronous=NORMAL, as quotaflow's files): what the ledger's
                           reservation and its settle each cost at the least (a miss
                           makes both, a profiled POST the settle; a miss's store is in
                           hishel's miss)
    httpx + thread hop     one ``anyio.to_thread.run_sync`` of a no-op (async rows only):
                           the cost of each blocking state call an async path offloads
    hishel miss            hishel 2's CacheTransport alone storing each new URL's
                           answer in its SqliteStorage: the least a miss through hishel
                           costs (quotaflow's miss adds its ledger, limiter, lease,
                           freshness rule and records)
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx

GAUGES = ("httpx + SQLite read", "httpx + SQLite write", "httpx + thread hop")
ASYNC_ONLY = frozenset({"httpx + thread hop"})


class SqliteGauge:
    """A WAL SQLite file holding one body to read back and one counter to change."""

    def __init__(self, path: Path, body: bytes) -> None:
        self._connection = sqlite3.connect(str(path), isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.execute(
            "CREATE TABLE IF NOT EXISTS bodies (key TEXT PRIMARY KEY, body BLOB NOT NULL)"
        )
        self._connection.execute("INSERT OR REPLACE INTO bodies VALUES ('hit', ?)", (body,))
        self._connection.execute("CREATE TABLE IF NOT EXISTS books (key TEXT PRIMARY KEY, n INT)")
        self._connection.execute("INSERT OR REPLACE INTO books VALUES ('quota', 0)")
        self._body = body

    def read(self) -> None:
        (found,) = self._connection.execute("SELECT body FROM bodies WHERE key = 'hit'").fetchone()
        assert len(found) == len(self._body)

    def write(self) -> None:
        self._connection.execute("BEGIN IMMEDIATE")
        self._connection.execute("UPDATE books SET n = n + 1 WHERE key = 'quota'")
        self._connection.execute("COMMIT")

    def close(self) -> None:
        self._connection.close()


def _nothing() -> None:
    return None


def sync_gauges(
    client: httpx.Client, url: httpx.URL, directory: Path, body: bytes, stack: contextlib.ExitStack
) -> dict[str, Callable[[int], None]]:
    """The sync gauges' runs: ``client`` (a bare httpx client) then the part alone."""
    directory.mkdir(parents=True, exist_ok=True)
    gauge = SqliteGauge(directory / "gauge.db", body)
    stack.callback(gauge.close)

    def plus(part: Callable[[], None]) -> Callable[[int], None]:
        def run(requests: int) -> None:
            for _ in range(requests):
                client.get(url)
                part()

        return run

    return {"httpx + SQLite read": plus(gauge.read), "httpx + SQLite write": plus(gauge.write)}


def async_gauges(
    client: httpx.AsyncClient,
    url: httpx.URL,
    directory: Path,
    body: bytes,
    stack: contextlib.AsyncExitStack,
) -> dict[str, Callable[[int], Awaitable[None]]]:
    """The async gauges' runs (the SQLite parts inline: their cost, not a hop's)."""
    directory.mkdir(parents=True, exist_ok=True)
    gauge = SqliteGauge(directory / "gauge.db", body)
    stack.callback(gauge.close)

    def plus(part: Callable[[], None]) -> Callable[[int], Awaitable[None]]:
        async def run(requests: int) -> None:
            for _ in range(requests):
                await client.get(url)
                part()

        return run

    async def hop(requests: int) -> None:
        for _ in range(requests):
            await client.get(url)
            await anyio.to_thread.run_sync(_nothing)

    return {
        "httpx + SQLite read": plus(gauge.read),
        "httpx + SQLite write": plus(gauge.write),
        "httpx + thread hop": hop,
    }


def bounds(
    rows: dict[str, dict[str, dict[str, float]]],
    redis: dict[str, Any],
    posts: dict[str, dict[str, float]],
) -> list[Bound]:
    """What the gauges say each target's path costs at the least, group by group."""
    found: list[Bound] = []
    for group, row in rows.items():
        if "httpx + SQLite read" not in row:
            continue
        read, write = row["httpx + SQLite read"]["ratio"], row["httpx + SQLite write"]["ratio"]
        warm = 1.30 if group.startswith("sync") else 1.50
        miss = 3.0 if group.startswith("sync") else 4.0
        hop = row.get("httpx + thread hop", {}).get("ratio", 1.0)
        # hishel's work to store an answer, done in a worker thread when async: its sync
        # miss (its own async storage hops more than quotaflow's does).
        hishel = rows[group.replace("async", "sync")]["hishel miss"]["ratio"]
        # A warm read (inline, async too: no hop). A miss: hishel's store, the ledger's
        # two write transactions, and async one hop before the upstream call, one after.
        found.append(Bound(group, "warm hit", warm, read, row["quotaflow hit (warm)"]))
        least = hishel + 2 * (write - 1) + 2 * (hop - 1)
        found.append(Bound(group, "miss", miss, least, row["quotaflow miss"]))
    for group, row in redis.items():
        found.append(Bound(group, "Redis hit", 2.0, row["ratio"], None))
    for group, measured in posts.items():
        # The ledger's settle: one write transaction (the reservation is taken in
        # memory while the quota is plentiful), one hop if async.
        gauges = rows[f"{group} 2 KB"]
        write = gauges["httpx + SQLite write"]["ratio"]
        hop = gauges.get("httpx + thread hop", {}).get("ratio", 1.0)
        least = write + (hop - 1)
        found.append(Bound(group, "POST, profiled", 1.5, least, measured))
    return found


@dataclass
class Bound:
    group: str
    path: str
    target: float
    least: float  # the ratio the parts alone add up to
    measured: dict[str, float] | None

    @property
    def reachable(self) -> bool:
        return self.least <= self.target


def print_bounds(found: list[Bound]) -> None:
    print(
        "\nlower bounds from the gauge rows (warm hit: one SQLite read; miss: hishel's sync"
        " miss alone plus two ledger writes, plus two thread hops async; profiled POST: the"
        " ledger's settle, one write, plus one hop async; Redis hit: bare httpx plus one"
        " redis-py GET)"
    )
    print(f"{'path':<28}{'target':>8}{'least':>8}{'measured':>10}  target reachable?")
    for bound in found:
        measured = f"{bound.measured['ratio']:.2f}" if bound.measured else "-"
        name = f"{bound.path} ({bound.group})"
        print(
            f"{name:<28}{bound.target:>8.2f}{bound.least:>8.2f}{measured:>10}"
            f"  {'yes' if bound.reachable else 'no: below what the parts alone cost'}"
        )
