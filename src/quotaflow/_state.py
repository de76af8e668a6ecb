"""Embedded state: the quota ledger and the short-window limiter, in one SQLite file.

Several processes share the file safely: every read-modify-write runs in a
``BEGIN IMMEDIATE`` transaction (WAL mode, so readers never block). Strictly private.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from pyrate_limiter import Decision, Rate, StateStore
from pyrate_limiter.abstracts.algorithm import State, StateAlgorithm
from pyrate_limiter.buckets.state_bucket import InMemoryStateStore

from ._ledger import Books, Ledger, Row
from ._profiles import ApiProfile
from ._recovery import check, is_corruption, set_aside
from ._window import NO_GATE, PAUSED, Gate, SlidingCap, Verdict, gate_of
from .exceptions import ConfigError

T = TypeVar("T")
logger = logging.getLogger("quotaflow")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS quota (
    profile TEXT PRIMARY KEY,
    period REAL NOT NULL,
    total INTEGER NOT NULL,
    remaining INTEGER NOT NULL,
    used INTEGER
);
CREATE TABLE IF NOT EXISTS inflight (
    id TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    cost INTEGER NOT NULL,
    started REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS inflight_profile ON inflight (profile);
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS limiter (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    day TEXT NOT NULL,
    profile TEXT NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0,
    misses INTEGER NOT NULL DEFAULT 0,
    revalidated INTEGER NOT NULL DEFAULT 0,
    stale INTEGER NOT NULL DEFAULT 0,
    refused INTEGER NOT NULL DEFAULT 0,
    saved INTEGER NOT NULL DEFAULT 0,
    spent INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, profile)
);
CREATE TABLE IF NOT EXISTS profile_status (
    profile TEXT PRIMARY KEY,
    last_error TEXT,
    last_error_at REAL,
    circuit TEXT,
    circuit_at REAL
);
"""


# Added to a wait, in seconds: float rounding of `now + wait` must not fall short of the
# millisecond that admits (~0.25 us is the float resolution of today's epoch seconds).
_MARGIN = 1e-6

# How long a transaction waits for another process's lock before giving up (seconds).
BUSY_TIMEOUT = 2.0
# Once one has given up, the transactions of the next BUSY_SPELL seconds wait only this
# long: a request makes several, and a file held for long must cost it one wait, not
# one per transaction (each then carries on without the state, as after the first).
BUSY_SHORT = 0.05
BUSY_SPELL = 5.0


class LocalStateError(Exception):
    """The state file could not serve this operation (busy, unwritable, corrupt)."""


class StateDB:
    """One SQLite connection shared by the threads of a process.

    A corrupt file is moved aside and rebuilt (see ``_recovery``); any other failure
    surfaces as LocalStateError, which each user turns into "carry on without it".
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._warned = False
        self._busy_until = 0.0  # monotonic: until then, waits are BUSY_SHORT
        check(path)
        try:
            self._connection = self._open()
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise ConfigError(f"state_dir: cannot use state file {path}: {exc}") from exc
            set_aside(path, exc)
            self._connection = self._open()

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT
        )
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(_SCHEMA)
        except BaseException:
            connection.close()
            raise
        return connection

    def _wait(self, seconds: float) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._connection.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")

    @property
    def busy_timeout(self) -> float:
        """The wait for another process's lock now, in seconds (for tests and status)."""
        with self._lock:
            (value,) = self._connection.execute("PRAGMA busy_timeout").fetchone()
        return float(value) / 1000

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            if self._busy_until and time.monotonic() >= self._busy_until:
                self._busy_until = 0.0
                self._wait(BUSY_TIMEOUT)
            try:
                cursor = self._connection.cursor()
                cursor.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._failed(exc) from exc
            try:
                yield cursor
                cursor.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    cursor.execute("ROLLBACK")
                raise self._failed(exc) from exc
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    cursor.execute("ROLLBACK")
                raise

    def _failed(self, exc: sqlite3.Error) -> LocalStateError:
        if is_corruption(exc):
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
            try:
                set_aside(self.path, exc)
                self._connection = self._open()
            except (OSError, sqlite3.Error):
                logger.warning("quotaflow: could not rebuild %s", self.path, exc_info=True)
        else:
            if "locked" in str(exc) or "busy" in str(exc):
                self._busy_until = time.monotonic() + BUSY_SPELL
                self._wait(BUSY_SHORT)
            if self._warned:
                return LocalStateError(str(exc))
            self._warned = True
            logger.warning(
                "quotaflow: state file %s unusable (%s); carrying on without it", self.path, exc
            )
        return LocalStateError(str(exc))

    def close(self) -> None:
        with self._lock:
            self._connection.close()


class SqliteLedger(Ledger):
    """The ledger in the state file: one ``BEGIN IMMEDIATE`` transaction per change."""

    def __init__(self, db: StateDB) -> None:
        super().__init__()
        self._db = db

    def _load(self, cur: sqlite3.Cursor, name: str) -> Row | None:
        cur.execute("SELECT period, total, remaining, used FROM quota WHERE profile = ?", (name,))
        found = cur.fetchone()
        return None if found is None else Row(*found)

    def _peek(self, name: str) -> Row | None:
        try:
            with self._db.transaction() as cur:
                return self._load(cur, name)
        except LocalStateError:
            return None

    def accounts(self) -> list[str]:
        try:
            with self._db.transaction() as cur:
                cur.execute("SELECT profile FROM quota ORDER BY profile")
                return [name for (name,) in cur.fetchall()]
        except LocalStateError:
            return []

    def _update(self, name: str, change: Callable[[Books], T]) -> T:
        try:
            return self._stored_update(name, change)
        except LocalStateError:
            # Fail open: decide on fresh books, store nothing.
            return change(Books(row=None))

    def _stored_update(self, name: str, change: Callable[[Books], T]) -> T:
        with self._db.transaction() as cur:
            cur.execute("SELECT id, cost, started FROM inflight WHERE profile = ?", (name,))
            inflight = {key: (cost, started) for key, cost, started in cur.fetchall()}
            books = Books(row=self._load(cur, name), inflight=dict(inflight))
            result = change(books)
            if books.row is not None:
                row = books.row
                cur.execute(
                    "INSERT OR REPLACE INTO quota (profile, period, total, remaining, used)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (name, row.period, row.total, row.remaining, row.used),
                )
            gone = inflight.keys() - books.inflight.keys()
            cur.executemany("DELETE FROM inflight WHERE id = ?", [(key,) for key in gone])
            cur.executemany(
                "INSERT INTO inflight (id, profile, cost, started) VALUES (?, ?, ?, ?)",
                [
                    (key, name, cost, started)
                    for key, (cost, started) in books.inflight.items()
                    if key not in inflight
                ],
            )
            return result


class SqliteStateStore(StateStore):
    """pyrate-limiter state for one key, kept in the state file (atomic across processes).

    One row per key, the state as comma-separated numbers, read, stepped and written
    back in one ``BEGIN IMMEDIATE`` transaction: one transaction per check. While the
    file cannot serve (busy past the timeout, unwritable), the state lives in process
    memory instead, so the rates, the pause and the breaker still hold in this process.
    """

    is_async = False

    def __init__(self, db: StateDB, key: str) -> None:
        self._db = db
        self._key = key
        self._local = InMemoryStateStore()

    def _read(self, cur: sqlite3.Cursor, algorithm: StateAlgorithm, rates: list[Rate]) -> State:
        cur.execute("SELECT state FROM limiter WHERE key = ?", (self._key,))
        row = cur.fetchone()
        if row is not None:
            # Unreadable: start over. A readable state of another shape (other rates,
            # an older layout) is the algorithm's to reject (SlidingCap starts over).
            with contextlib.suppress(ValueError):
                return algorithm.decode(row[0].split(","))
        return algorithm.initial(rates)

    def check(
        self, algorithm: StateAlgorithm, rates: list[Rate], now: int, weight: int
    ) -> Decision:
        try:
            return self._check(algorithm, rates, now, weight)
        except LocalStateError:
            decision = self._local.check(algorithm, rates, now, weight)  # type: ignore[no-untyped-call]
            assert isinstance(decision, Decision)
            return decision

    def _check(
        self, algorithm: StateAlgorithm, rates: list[Rate], now: int, weight: int
    ) -> Decision:
        with self._db.transaction() as cur:
            state = self._read(cur, algorithm, rates)
            new_state, decision = algorithm.step(rates, state, now, weight)
            # A refusal leaves the state as it was; so may a check without rates.
            if decision.allowed and new_state != state:
                cur.execute(
                    "INSERT OR REPLACE INTO limiter (key, state) VALUES (?, ?)",
                    (self._key, ",".join(map(str, map(int, new_state)))),
                )
            return decision

    def read(self, algorithm: StateAlgorithm, rates: list[Rate]) -> State:
        try:
            with self._db.transaction() as cur:
                return self._read(cur, algorithm, rates)
        except LocalStateError:
            state = self._local.read(algorithm, rates)  # type: ignore[no-untyped-call]
            assert isinstance(state, tuple)
            return state

    def reset(self) -> None:
        self._local.reset()
        with contextlib.suppress(LocalStateError), self._db.transaction() as cur:
            cur.execute("DELETE FROM limiter WHERE key = ?", (self._key,))


class ShortWindow:
    """A profile's short-window rates over a store, and the profile's *gate*: a pause
    the API itself may ask for (429 with Retry-After) and its circuit breaker's state,
    shared by every process on the store (see ``_window``).

    Each ``Rate(limit, per, burst)``: never more than ``limit`` requests in any ``per``
    seconds, at most ``burst`` at once (see ``_window.SlidingCap``). ``profile`` None:
    no rates, only the gate.
    """

    def __init__(self, profile: ApiProfile | None, store: StateStore) -> None:
        self.rates = sorted(
            (
                Rate(r.limit, max(1, round(r.per * 1000)), r.burst)
                for r in (profile.rates if profile is not None else ())
            ),
            key=lambda rate: rate.interval,
        )
        self.algorithm = SlidingCap()
        self.store = store
        # The gate as the last check or operation of this process found it, and the
        # latest pause known here (seconds): until then no check needs the store.
        self.gate: Gate = NO_GATE
        self.paused_until = 0.0

    def _learn(self, decision: Decision) -> Decision:
        if isinstance(decision, Verdict):  # every store running SlidingCap answers one
            self.gate = decision.gate
            if decision.gate.pause:
                self.paused_until = max(self.paused_until, decision.gate.pause / 1000)
        return decision

    def apply(self, operation: SlidingCap, now: float) -> Verdict:
        """Apply one of the gate's operations (``SlidingCap.hold(...)``...) atomically.

        Raises:
            StateUnavailable: the shared store is unreachable and fails closed.
        """
        decision = self.store.check(operation, self.rates, math.floor(now * 1000), 1)
        assert isinstance(decision, Decision)  # sync stores only
        self._learn(decision)
        return decision if isinstance(decision, Verdict) else Verdict(gate=self.gate)

    def pause(self, until: float, now: float) -> None:
        """Nobody sends before ``until``: this process at once, the others on this store
        from their next check. A pause only ever moves later.

        Raises:
            StateUnavailable: the shared store is unreachable and fails closed (the
                pause still holds in this process).
        """
        self.paused_until = max(self.paused_until, until)
        # Rounded up: never a millisecond short of what the API asked.
        self.apply(SlidingCap.hold(math.ceil(until * 1000)), now)

    def try_acquire(self, now: float) -> float:
        """Take a place; return 0 if admitted, else seconds to wait (-1: never fits).

        A caller that comes back after the wait is admitted, unless someone else took
        the place meanwhile (or asked everyone to hold off).
        """
        if now < self.paused_until:
            return self.paused_until - now
        # Milliseconds, truncated: the algorithm counts a stamp inclusively for that.
        now_ms = math.floor(now * 1000)
        # Sync stores only (pyrate-limiter types check() as maybe-awaitable).
        decision = self.store.check(self.algorithm, self.rates, now_ms, 1)
        assert isinstance(decision, Decision)
        self._learn(decision)
        if decision.allowed:
            return 0.0
        if decision.failing_rate is PAUSED and now < self.paused_until:
            return self.paused_until - now  # as if this process had paused itself
        if decision.retry_after_ms is None:
            return -1.0
        # The wait to the first millisecond that admits, measured from the real `now`
        # (not its truncation), plus a microsecond so that float rounding never lands a
        # waiter just short of it.
        due = (now_ms + max(decision.retry_after_ms, 1)) / 1000
        return max(due - now, 0.0) + _MARGIN

    def available(self, now: float) -> int | None:
        """How many requests would be admitted now (None: no rates). For reporting."""
        if not self.rates:
            return None
        state = self.store.read(self.algorithm, self.rates)
        assert isinstance(state, tuple)
        return self.algorithm.available(self.rates, state, math.floor(now * 1000))

    def stored_gate(self, now: float) -> Gate:
        """The gate as the store holds it at ``now``, read without a check (reporting:
        what every process on the store goes by, not what this one last learnt)."""
        state = self.store.read(self.algorithm, self.rates)
        assert isinstance(state, tuple)
        return gate_of(state, math.floor(now * 1000))
