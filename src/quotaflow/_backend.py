"""Where shared state lives: the quota ledger, the short-window limiter, the
single-flight leases and the cache entries. SQLite by default, Redis when several
machines share an API key. Strictly private."""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import sqlite3
import uuid
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

import hishel
from pyrate_limiter import StateStore

from ._credentials import load_key
from ._ledger import Ledger
from ._recovery import check
from ._state import LocalStateError, SqliteLedger, SqliteStateStore, StateDB

if TYPE_CHECKING:
    from ._cold import ColdStats, ColdStore

CACHE_FILE = "cache.db"
STATE_FILE = "state.db"

logger = logging.getLogger("quotaflow")

# Before every store, hishel's SqliteStorage deletes what has expired (_reclaim_space):
#   DELETE FROM entries WHERE id IN (SELECT id FROM entries
#     WHERE expires_at < :now AND last_accessed_at < :now - soft_delete_ttl LIMIT 200)
# SQLite plans the inner SELECT on idx_entries_last_accessed_at (EXPLAIN QUERY PLAN). Once
# entries have been idle for the 180 s soft-delete window, as in any cache in use, every
# row is in that range, so each store walked the whole table to test expires_at: 13.7 ms
# per store at 30K entries, growing with the cache. With this covering index on hishel's
# table the planner answers the SELECT from the index alone, visiting only the rows that
# have expired or were removed (0.05 ms at 30K).
EXPIRY_INDEX = "quotaflow_entries_expiry"
_CREATE_EXPIRY_INDEX = (
    f"CREATE INDEX IF NOT EXISTS {EXPIRY_INDEX} ON entries (expires_at, last_accessed_at, id)"
)


def index_cache(path: Path) -> None:
    """Give the hishel cache at ``path`` the index its cleanup needs. Never raises:
    without it the cache still works, only stores get slower as it grows."""
    # hishel creates its tables when it first opens the file; a throwaway storage does
    # that now, so the index exists before the first store of a fresh cache.
    storage = hishel.SqliteStorage(database_path=path)
    try:
        storage.get_entries("")
    except Exception as exc:  # a file hishel refuses: it says so again on first use
        logger.warning("quotaflow: cannot index the cache %s: %s", path, exc)
        return
    finally:
        storage.close()
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=5.0)) as connection:
            connection.execute(_CREATE_EXPIRY_INDEX)
    except sqlite3.Error as exc:
        logger.warning("quotaflow: cannot index the cache %s: %s", path, exc)


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

    def reader(self) -> hishel.BaseStorage | None:
        """A blocking storage over the same entries, for the async stack to read a
        fresh answer in one worker-thread hop; None when its async storage is as cheap."""
        return None

    @abc.abstractmethod
    def fingerprint_key(self) -> bytes:
        """The key credential fingerprints are made with (``_credentials``): the same
        for every process sharing this state, so they share cache partitions."""

    def cold_store(self, max_bytes: int, secrets: Collection[str]) -> ColdStore | None:
        """The cold store kept with this state (``_cold``); None: the state
        directory's ``cold.db``."""
        return None

    def cold_stats(self) -> dict[str, ColdStats] | None:
        """Per profile, what the cold store kept with this state holds; None: read
        the state directory's ``cold.db``."""
        return None

    def close(self) -> None:  # noqa: B027 - backends with resources override it
        pass


def _alive(token: str) -> bool:
    """Whether the process that took a lease (its pid leads the token) still runs. The
    processes sharing a SQLite state share a machine, so a leader that died (SIGKILL)
    is seen at once, not when its lease expires. A token of another form: alive."""
    pid, _, _ = token.partition("-")
    if not pid.isdigit() or int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: it exists
        return True
    return True


class SqliteLeases(Leases):
    """Leases in the state file, each naming the process that holds it: a holder that
    died lets go at once."""

    def __init__(self, db: StateDB) -> None:
        self._db = db

    def acquire(self, key: str, ttl: float, now: float) -> str | None:
        token = f"{os.getpid()}-{uuid.uuid4().hex}"
        try:
            return self._acquire(key, token, ttl, now)
        except LocalStateError:
            return token  # fail open: lead without a lease

    def _acquire(self, key: str, token: str, ttl: float, now: float) -> str | None:
        with self._db.transaction() as cur:
            cur.execute("SELECT expires, token FROM leases WHERE key = ?", (key,))
            row = cur.fetchone()
            if row is not None and row[0] > now and _alive(row[1]):
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
                cur.execute("SELECT expires, token FROM leases WHERE key = ?", (key,))
                row = cur.fetchone()
        except LocalStateError:
            return False
        return row is not None and row[0] > now and _alive(row[1])


class SqliteBackend(Backend):
    """The embedded default: two SQLite files in the state directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # hishel opens the cache lazily and turns its errors into misses, so a corrupt
        # cache file is caught here, before either storage touches it.
        check(directory / CACHE_FILE)
        index_cache(directory / CACHE_FILE)
        self.db = StateDB(directory / STATE_FILE)
        self.ledger = SqliteLedger(self.db)
        self.leases = SqliteLeases(self.db)

    def window_store(self, key: str) -> StateStore:
        return SqliteStateStore(self.db, key)

    def storage(self) -> hishel.BaseStorage:
        return hishel.SqliteStorage(database_path=self.directory / CACHE_FILE)

    def async_storage(self) -> hishel.AsyncBaseStorage:
        return hishel.AsyncSqliteStorage(database_path=self.directory / CACHE_FILE)

    def reader(self) -> hishel.BaseStorage | None:
        # hishel's async SQLite storage (anysqlite) hops to a thread per statement.
        return self.storage()

    def fingerprint_key(self) -> bytes:
        return load_key(self.directory)

    def close(self) -> None:
        self.db.close()
