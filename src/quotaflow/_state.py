"""Embedded state: the quota ledger and the short-window limiter, in one SQLite file.

Several processes share the file safely: every read-modify-write runs in a
``BEGIN IMMEDIATE`` transaction (WAL mode, so readers never block). Strictly private.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
from pyrate_limiter import Decision, Rate, StateStore, TokenBucket
from pyrate_limiter.abstracts.algorithm import State, StateAlgorithm

from . import _policy
from ._priority import Priority
from ._profiles import ApiProfile, QuotaReading
from .exceptions import ConfigError, QuotaExhausted

# A reservation whose process never settled it (it crashed) is charged in full
# after this long: the ledger may over-count a crash, never under-count it.
INFLIGHT_TIMEOUT = 600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS quota (
    profile TEXT PRIMARY KEY,
    period REAL NOT NULL,
    total INTEGER NOT NULL,
    remaining INTEGER NOT NULL,
    used INTEGER,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS inflight (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    profile TEXT NOT NULL,
    cost INTEGER NOT NULL,
    started REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS limiter (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
"""


class StateDB:
    """One SQLite connection shared by the threads of a process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            self._connection = sqlite3.connect(
                str(path), check_same_thread=False, isolation_level=None, timeout=10.0
            )
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._connection.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"state_dir: cannot use state file {path}: {exc}") from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cursor = self._connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._connection.close()


@attrs.frozen
class Ticket:
    """A reservation of quota units for one request in flight."""

    id: int
    profile: str
    cost: int


@attrs.frozen
class _Row:
    period: float
    total: int
    remaining: int
    used: int | None


class Ledger:
    """The long-window quota of every profile, as last known."""

    def __init__(self, db: StateDB) -> None:
        self._db = db
        # The last value seen by this process, so cache hits report it for free.
        self._known: dict[str, int] = {}

    def close(self) -> None:
        self._db.close()

    def known_remaining(self, profile: ApiProfile) -> int | None:
        if profile.quota is None:
            return None
        known = self._known.get(profile.name)
        if known is None:
            with self._db.transaction() as cur:
                cur.execute("SELECT remaining FROM quota WHERE profile = ?", (profile.name,))
                row = cur.fetchone()
            if row is not None:
                known = self._known[profile.name] = int(row[0])
        return known

    def _load(self, cur: sqlite3.Cursor, profile: ApiProfile, now: float) -> _Row:
        assert profile.quota is not None
        period = _policy.period_start(profile.quota, now)
        cur.execute(
            "SELECT period, total, remaining, used FROM quota WHERE profile = ?", (profile.name,)
        )
        found = cur.fetchone()
        if found is not None and found[0] == period:
            row = _Row(period=found[0], total=found[1], remaining=found[2], used=found[3])
        else:
            # A new period: the whole quota again (the size learned from headers is kept).
            total = found[1] if found is not None else profile.quota.limit
            row = _Row(period=period, total=total, remaining=total, used=None)
            self._store(cur, profile, row, now)
        # Reservations of processes that died are charged, never forgotten.
        cur.execute(
            "SELECT COALESCE(SUM(cost), 0) FROM inflight WHERE profile = ? AND started < ?",
            (profile.name, now - INFLIGHT_TIMEOUT),
        )
        abandoned = int(cur.fetchone()[0])
        if abandoned:
            cur.execute(
                "DELETE FROM inflight WHERE profile = ? AND started < ?",
                (profile.name, now - INFLIGHT_TIMEOUT),
            )
            row = attrs.evolve(row, remaining=row.remaining - abandoned)
            self._store(cur, profile, row, now)
        return row

    def _store(self, cur: sqlite3.Cursor, profile: ApiProfile, row: _Row, now: float) -> None:
        cur.execute(
            "INSERT OR REPLACE INTO quota (profile, period, total, remaining, used, updated)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (profile.name, row.period, row.total, row.remaining, row.used, now),
        )
        self._known[profile.name] = row.remaining

    def reserve(
        self, profile: ApiProfile, priority: Priority, cost: int, now: float
    ) -> Ticket | None:
        """Set ``cost`` units aside for a request about to be sent.

        Raises:
            QuotaExhausted: the units would come out of ``priority``'s reserve.
        """
        if profile.quota is None:
            return None
        with self._db.transaction() as cur:
            row = self._load(cur, profile, now)
            cur.execute(
                "SELECT COALESCE(SUM(cost), 0) FROM inflight WHERE profile = ?", (profile.name,)
            )
            available = row.remaining - int(cur.fetchone()[0])
            reserve = profile.reserves[priority]
            if not _policy.admits(available=available, total=row.total, cost=cost, reserve=reserve):
                raise QuotaExhausted(
                    f"{profile.name}: a request costing {cost} would leave {available - cost} of "
                    f"{row.total} units, inside the {reserve:.0%} reserve of priority {priority}",
                    profile=profile.name,
                    remaining=row.remaining,
                    cost=cost,
                )
            cur.execute(
                "INSERT INTO inflight (profile, cost, started) VALUES (?, ?, ?)",
                (profile.name, cost, now),
            )
            return Ticket(id=cur.lastrowid or 0, profile=profile.name, cost=cost)

    def release(self, ticket: Ticket | None) -> None:
        """The request was never sent: give its units back."""
        if ticket is not None:
            with self._db.transaction() as cur:
                cur.execute("DELETE FROM inflight WHERE id = ?", (ticket.id,))

    def settle(
        self,
        profile: ApiProfile,
        ticket: Ticket | None,
        spent: int,
        reading: QuotaReading,
        now: float,
        *,
        exhausted: bool = False,
    ) -> int | None:
        """Record what a request cost and what the API said; return the remaining quota."""
        if profile.quota is None:
            return reading.remaining
        with self._db.transaction() as cur:
            if ticket is not None:
                cur.execute("DELETE FROM inflight WHERE id = ?", (ticket.id,))
            row = self._load(cur, profile, now)
            # The API's word is the truth, unless an older answer arrives after a newer
            # one: `used` only grows within a period, so a smaller one is out of date
            # (and its cost is already counted in the newer reading).
            if reading.remaining is not None and (
                reading.used is None or row.used is None or reading.used >= row.used
            ):
                used = reading.used if reading.used is not None else row.used
                total = used + reading.remaining if used is not None else row.total
                row = _Row(row.period, max(total, 1), reading.remaining, used)
            elif reading.remaining is None:
                used = row.used + spent if row.used is not None else None
                row = attrs.evolve(row, remaining=row.remaining - spent, used=used)
            if exhausted:
                row = attrs.evolve(row, remaining=min(row.remaining, 0))
            self._store(cur, profile, row, now)
            return row.remaining


class SqliteStateStore(StateStore):
    """pyrate-limiter state for one key, kept in the state file (atomic across processes)."""

    is_async = False

    def __init__(self, db: StateDB, key: str) -> None:
        self._db = db
        self._key = key

    def _read(self, cur: sqlite3.Cursor, algorithm: StateAlgorithm, rates: list[Rate]) -> State:
        cur.execute("SELECT state FROM limiter WHERE key = ?", (self._key,))
        row = cur.fetchone()
        if row is not None:
            values = row[0].split(",")
            if len(values) == len(rates):
                with contextlib.suppress(ValueError):
                    return algorithm.decode(values)
        return algorithm.initial(rates)

    def check(
        self, algorithm: StateAlgorithm, rates: list[Rate], now: int, weight: int
    ) -> Decision:
        with self._db.transaction() as cur:
            state = self._read(cur, algorithm, rates)
            new_state, decision = algorithm.step(rates, state, now, weight)
            if decision.allowed:
                cur.execute(
                    "INSERT OR REPLACE INTO limiter (key, state) VALUES (?, ?)",
                    (self._key, ",".join(str(int(v)) for v in new_state)),
                )
            return decision

    def read(self, algorithm: StateAlgorithm, rates: list[Rate]) -> State:
        with self._db.transaction() as cur:
            return self._read(cur, algorithm, rates)

    def reset(self) -> None:
        with self._db.transaction() as cur:
            cur.execute("DELETE FROM limiter WHERE key = ?", (self._key,))


class ShortWindow:
    """A profile's short-window rates: pyrate-limiter's token bucket over a store."""

    def __init__(self, profile: ApiProfile, store: StateStore) -> None:
        self.rates = sorted(
            (Rate(r.limit, max(1, round(r.per * 1000)), r.burst) for r in profile.rates),
            key=lambda rate: rate.interval,
        )
        self.algorithm = TokenBucket()
        self.store = store

    def try_acquire(self, now: float) -> float:
        """Take a token; return 0 if admitted, else seconds to wait (-1: never fits)."""
        # Sync stores only (pyrate-limiter types check() as maybe-awaitable).
        decision = self.store.check(self.algorithm, self.rates, int(now * 1000), 1)
        assert isinstance(decision, Decision)
        if decision.allowed:
            return 0.0
        if decision.retry_after_ms is None:
            return -1.0
        return float(max(decision.retry_after_ms, 1)) / 1000
