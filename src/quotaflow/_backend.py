"""Where shared state lives: the quota ledger, the short-window limiter, the
single-flight leases and the cache entries. SQLite by default, Redis when several
machines share an API key. Strictly private."""

from __future__ import annotations

import abc
import contextlib
import uuid
from pathlib import Path

import hishel
from pyrate_limiter import StateStore

from ._ledger import Ledger
from ._recovery import check
from ._state import LocalStateError, SqliteLedger, SqliteStateStore, StateDB

CACHE_FILE = "cache.db"
STATE_FILE = "state.db"


class Leases(abc.ABC):
    """Locks with an expiry, so that one process at a time fetches a resource."""

    @abc.abstractmethod
    def acquire(self, key: str, ttl: float, now: float) -> str | None:
        """Take the lease on ``key``; return its token, or None if another holds it."""

    @abc.abstractmethod
    def release(self, key: str, token: str) -> None:
        """Give the lease back (only if ``token`` still holds it)."""

    @abc.abstractmethod
    def held(self, key: str, now: float) -> bool:
        """Whether someone holds the lease on ``key``."""


class Backend(abc.ABC):
    """One place for all shared state."""

    ledger: Ledger
    leases: Leases

    @abc.abstractmethod
    def window_store(self, key: str) -> StateStore:
        """pyrate-limiter state for one short-window bucket."""

    @abc.abstractmethod
    def storage(self) -> hishel.BaseStorage:
        """hishel storage for the sync stack."""

    @abc.abstractmethod
    def async_storage(self) -> hishel.AsyncBaseStorage:
        """hishel storage for the async stack."""

    def close(self) -> None:  # noqa: B027 - backends with resources override it
        pass


class SqliteLeases(Leases):
    def __init__(self, db: StateDB) -> None:
        self._db = db

    def acquire(self, key: str, ttl: float, now: float) -> str | None:
        token = uuid.uuid4().hex
        try:
            return self._acquire(key, token, ttl, now)
        except LocalStateError:
            return token  # fail open: lead without a lease

    def _acquire(self, key: str, token: str, ttl: float, now: float) -> str | None:
        with self._db.transaction() as cur:
            cur.execute("SELECT expires FROM leases WHERE key = ?", (key,))
            row = cur.fetchone()
            if row is not None and row[0] > now:
                return None
            cur.execute(
                "INSERT OR REPLACE INTO leases (key, token, expires) VALUES (?, ?, ?)",
                (key, token, now + ttl),
            )
        return token

    def release(self, key: str, token: str) -> None:
        with contextlib.suppress(LocalStateError), self._db.transaction() as cur:
            cur.execute("DELETE FROM leases WHERE key = ? AND token = ?", (key, token))

    def held(self, key: str, now: float) -> bool:
        try:
            with self._db.transaction() as cur:
                cur.execute("SELECT expires FROM leases WHERE key = ?", (key,))
                row = cur.fetchone()
        except LocalStateError:
            return False
        return row is not None and row[0] > now


class SqliteBackend(Backend):
    """The embedded default: two SQLite files in the state directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # hishel opens the cache lazily and turns its errors into misses, so a corrupt
        # cache file is caught here, before either storage touches it.
        check(directory / CACHE_FILE)
        self.db = StateDB(directory / STATE_FILE)
        self.ledger = SqliteLedger(self.db)
        self.leases = SqliteLeases(self.db)

    def window_store(self, key: str) -> StateStore:
        return SqliteStateStore(self.db, key)

    def storage(self) -> hishel.BaseStorage:
        return hishel.SqliteStorage(database_path=self.directory / CACHE_FILE)

    def async_storage(self) -> hishel.AsyncBaseStorage:
        return hishel.AsyncSqliteStorage(database_path=self.directory / CACHE_FILE)

    def close(self) -> None:
        self.db.close()
