"""The embedded default backend: the ledger, the short windows and gates, and the
leases in the state file (``_db``), hishel's cache in ``cache.db``. Strictly private."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import hishel

from .._credentials import load_key
from ._backend import CACHE_FILE, STATE_FILE, Backend, LeaseHeld, Leases, LeaseStep
from ._board import Board
from ._books import Books
from ._db import LocalStateError, StateDB
from ._hishel import SqliteCache, index_cache
from ._hishel_async import AsyncSqliteCache
from ._journal import REPLAYED_KEEP, Journal
from ._ledger import Also, Ledger, Unreachable
from ._pyrate import Decision, InMemoryStateStore, State, StateAlgorithm, StateStore, WindowRate
from ._recovery import check
from ._schema import JOURNAL_FILE
from ._sqlite_leases import SqliteLeases, acquire_in, land_in
from ._trust import Row

__all__ = ["SqliteBackend", "SqliteLeases", "SqliteLedger", "SqliteWindowStore"]

T = TypeVar("T")


class SqliteLedger(Ledger):
    """The ledger in the state file: one ``BEGIN IMMEDIATE`` transaction per change."""

    def __init__(self, db: StateDB, journal: Journal | None = None) -> None:
        super().__init__(journal)
        self._db = db

    def _load(self, cur: sqlite3.Cursor, name: str) -> Row | None:
        cur.execute("SELECT period, total, remaining, used FROM quota WHERE profile = ?", (name,))
        found = cur.fetchone()
        return None if found is None else Row(*found)

    def _lost(self, cur: sqlite3.Cursor) -> bool:
        (found,) = cur.execute("SELECT EXISTS(SELECT 1 FROM lost)").fetchone()
        return bool(found)

    def lost(self) -> bool:
        try:
            with self._db.transaction() as cur:
                return self._lost(cur)
        except LocalStateError:
            return False

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

    def _store(
        self,
        name: str,
        change: Callable[[Books], T],
        once: str = "",
        also: Also | None = None,
        lease: LeaseStep | None = None,
    ) -> T:
        try:
            return self._stored_update(name, change, once, also, lease)
        except LocalStateError as exc:
            raise Unreachable(str(exc)) from exc

    def joint(self, store: StateStore | Leases | Board) -> bool:
        joins = getattr(store, "joins", None)
        return joins is not None and bool(joins(self._db))

    def _stored_update(
        self,
        name: str,
        change: Callable[[Books], T],
        once: str,
        also: Also | None,
        lease: LeaseStep | None = None,
    ) -> T:
        with self._db.transaction() as cur:
            if lease is not None and lease.take and not acquire_in(cur, lease):
                raise LeaseHeld(lease.key)
            replayed = False
            if once:
                # Kept as long as Redis keeps them: an entry older is of an ended period.
                moment = time.time()
                cur.execute("DELETE FROM replayed WHERE at < ?", (moment - REPLAYED_KEEP,))
                cur.execute("INSERT OR IGNORE INTO replayed (id, at) VALUES (?, ?)", (once, moment))
                replayed = cur.rowcount == 0
            cur.execute("SELECT id, cost, started FROM inflight WHERE profile = ?", (name,))
            inflight = {key: (cost, started) for key, cost, started in cur.fetchall()}
            loaded = self._load(cur, name)
            books = Books(row=loaded, inflight=dict(inflight), replayed=replayed)
            books.lost = books.row is None and self._lost(cur)
            result = change(books)
            # A row the change left as it was (a settle that matched its reservation) is
            # not written again: an unchanged write still adds its pages to the WAL.
            if books.row is not None and books.row != loaded:
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
            if also is not None:
                also(cur)
            if lease is not None and not lease.take:
                land_in(cur, lease)
            return result


class SqliteWindowStore(StateStore):
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

    def _read(
        self, cur: sqlite3.Cursor, algorithm: StateAlgorithm, rates: list[WindowRate]
    ) -> State:
        cur.execute("SELECT state FROM limiter WHERE key = ?", (self._key,))
        row = cur.fetchone()
        if row is not None:
            # Unreadable: start over. A readable state of another shape (other rates,
            # an older layout) is the algorithm's to reject (SlidingCap starts over).
            with contextlib.suppress(ValueError):
                return algorithm.decode(row[0].split(","))
        return algorithm.initial(rates)

    def check(
        self, algorithm: StateAlgorithm, rates: list[WindowRate], now: int, weight: int
    ) -> Decision:
        try:
            return self._check(algorithm, rates, now, weight)
        except LocalStateError:
            decision = self._local.check(algorithm, rates, now, weight)  # type: ignore[no-untyped-call]
            assert isinstance(decision, Decision)
            return decision

    def _check(
        self, algorithm: StateAlgorithm, rates: list[WindowRate], now: int, weight: int
    ) -> Decision:
        with self._db.transaction() as cur:
            return self.check_in(cur, algorithm, rates, now, weight)

    def check_in(
        self,
        cur: sqlite3.Cursor,
        algorithm: StateAlgorithm,
        rates: list[WindowRate],
        now: int,
        weight: int,
    ) -> Decision:
        """:meth:`check` inside a transaction of the caller's (the ledger's: one round
        trip for both, see ``Limiter.reserve``)."""
        state = self._read(cur, algorithm, rates)
        new_state, decision = algorithm.step(rates, state, now, weight)
        # A refusal leaves the state as it was (unless the clock stepped back and
        # moved it, see _window.rebased); so may a check without rates.
        if new_state != state:
            cur.execute(
                "INSERT OR REPLACE INTO limiter (key, state) VALUES (?, ?)",
                (self._key, ",".join(map(str, map(int, new_state)))),
            )
        return decision

    def joins(self, db: StateDB) -> bool:
        """Whether a check can run in a transaction of ``db``'s."""
        return db is self._db

    def read(self, algorithm: StateAlgorithm, rates: list[WindowRate]) -> State:
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


class SqliteBackend(Backend):
    """The embedded default: two SQLite files in the state directory."""

    def __init__(self, directory: Path, *, journal: bool = True) -> None:
        """``journal``: calls the state file could not record go to the journal and are
        replayed into it (False: Redis's fallback, whose journal replays into Redis)."""
        self.directory = directory
        # hishel opens the cache lazily and turns its errors into misses, so a corrupt
        # cache file is caught here, before either storage touches it.
        check(directory / CACHE_FILE)
        index_cache(directory / CACHE_FILE)
        self.db = StateDB(directory / STATE_FILE)
        kept = Journal(directory / JOURNAL_FILE) if journal else None
        self.ledger = SqliteLedger(self.db, kept)
        self.leases = SqliteLeases(self.db)

    def window_store(self, key: str) -> StateStore:
        return SqliteWindowStore(self.db, key)

    def storage(self) -> hishel.BaseStorage:
        return SqliteCache(self.directory / CACHE_FILE)

    def async_storage(self) -> hishel.AsyncBaseStorage:
        return AsyncSqliteCache(self.directory / CACHE_FILE)

    def reader(self) -> hishel.BaseStorage | None:
        # A blocking storage for the async stack's warm reads (``_client`` takes the one
        # inside ``AsyncSqliteCache`` instead, when it is given that).
        return self.storage()

    def fingerprint_key(self) -> bytes:
        return load_key(self.directory)

    def round_trips(self) -> int:
        return self.db.round_trips

    def close(self) -> None:
        self.db.close()
