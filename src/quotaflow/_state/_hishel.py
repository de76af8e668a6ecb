"""The one place quotaflow relies on hishel beyond its public API, fenced as
``_network.py`` fences httpx's internals. Strictly private.

Checked against hishel 2.0.x (``CHECKED``). What is relied on:

- that :class:`hishel.SqliteStorage` and :class:`hishel.AsyncSqliteStorage` use the
  ``connection`` they are given (public) for every statement, so its busy timeout is
  theirs (:class:`SqliteCache`, :class:`AsyncSqliteCache`);
- the layout of :class:`hishel.SqliteStorage`'s table, ``entries (id, expires_at,
  last_accessed_at, ...)``, to add the index its cleanup needs (:func:`index_cache`).
  If a later hishel changes it, creating the index fails and is logged at WARNING: the
  cache still works, only stores get slower as it grows.
- the key layout and helpers of :class:`hishel.RedisStorage`, which
  ``_redis_entries`` lists: its scripts read and write hishel's entries in one call
  each, so both read what the other wrote.

Everything else quotaflow uses of hishel is public: the storages and their
``max_stream_size``, ``Entry``/``Request``/``Response``/``Headers``, the
``CacheTransport``s, ``IdleClient`` and ``extensions["caching"]``.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
import uuid
from pathlib import Path

import anysqlite
import hishel

from ._db import BUSY_SHORT, BUSY_SPELL, BUSY_TIMEOUT

__all__ = ["CHECKED", "EXPIRY_INDEX", "AsyncSqliteCache", "SqliteCache", "index_cache"]

logger = logging.getLogger("quotaflow")

# The hishel releases whose internals the code below was checked against
# (``tests/test_retention.py`` fails on any other, so an upgrade is re-checked).
CHECKED = ("2.0.",)

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


def _connect(path: Path) -> sqlite3.Connection:
    """The connection hishel's storage is given (its own would wait 5 s per statement
    for another process's lock): as ``state.db``'s, waiting ``BUSY_TIMEOUT``."""
    return sqlite3.connect(
        str(path), check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT
    )


class _Spell:
    """``state.db``'s one-wait rule (``_db``) for ``cache.db``: once an operation has
    waited out another process's lock, the statements of the next ``BUSY_SPELL`` seconds
    wait ``BUSY_SHORT``. Reads go on (WAL: a writer's lock does not block them), so hits
    are still hits; a store that cannot get the lock leaves the answer unstored (hishel
    serves it uncached) instead of holding the request."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._connection = connection
        self._path = path
        self._until = 0.0  # monotonic: until then, waits are BUSY_SHORT
        self._warned = False
        # hishel sets its own busy timeout (5 s) when it first uses the connection: the
        # first operation's end sets ours back.
        self._ours = False

    def begin(self) -> float:
        now = time.monotonic()
        if self._until and now >= self._until:
            self._until = 0.0
            self._wait(BUSY_TIMEOUT)
        return now

    def end(self, started: float) -> None:
        if not self._ours:
            self._ours = True
            self._wait(BUSY_SHORT if self._until else BUSY_TIMEOUT)
        if self._until or time.monotonic() - started < BUSY_TIMEOUT * 0.9:
            return
        self._until = time.monotonic() + BUSY_SPELL
        self._wait(BUSY_SHORT)
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        logger.log(
            level,
            "quotaflow: the cache %s is locked by another process; for %.0f s its writes "
            "wait %.0f ms (answers meanwhile may go unstored)",
            self._path,
            BUSY_SPELL,
            BUSY_SHORT * 1000,
        )

    @property
    def busy_timeout(self) -> float:
        """The wait for another process's lock now, in seconds (for tests)."""
        (value,) = self._connection.execute("PRAGMA busy_timeout").fetchone()
        return float(value) / 1000

    def _wait(self, seconds: float) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._connection.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")


class SqliteCache(hishel.SqliteStorage):
    """hishel's SQLite storage with ``cache.db``'s busy waits bounded (:class:`_Spell`)."""

    def __init__(self, path: Path) -> None:
        connection = _connect(path)
        super().__init__(connection=connection, database_path=path)
        self.spell = _Spell(connection, path)
        self.get_entries("")  # hishel sets the file up now, so every request has our wait

    def create_entry(
        self,
        request: hishel.Request,
        response: hishel.Response,
        key: str,
        *,
        ttl: float | None = None,
        tti: float | None = None,
    ) -> hishel.Entry:
        started = self.spell.begin()
        try:
            return super().create_entry(request, response, key, ttl=ttl, tti=tti)
        finally:
            self.spell.end(started)

    def get_entries(self, key: str) -> list[hishel.Entry]:
        started = self.spell.begin()
        try:
            return super().get_entries(key)
        finally:
            self.spell.end(started)

    def update_headers(self, id: uuid.UUID, headers: hishel.Headers) -> None:
        started = self.spell.begin()
        try:
            super().update_headers(id, headers)
        finally:
            self.spell.end(started)

    def remove_entry(self, id: uuid.UUID) -> None:
        started = self.spell.begin()
        try:
            super().remove_entry(id)
        finally:
            self.spell.end(started)


class AsyncSqliteCache(hishel.AsyncSqliteStorage):
    """Async twin of :class:`SqliteCache` (its connection runs on anysqlite's threads).
    Its first operation sets the file up, with hishel's own busy wait (5 s)."""

    def __init__(self, path: Path) -> None:
        connection = _connect(path)
        super().__init__(connection=anysqlite.Connection(connection), database_path=path)
        self.spell = _Spell(connection, path)

    async def create_entry(
        self,
        request: hishel.Request,
        response: hishel.Response,
        key: str,
        *,
        ttl: float | None = None,
        tti: float | None = None,
    ) -> hishel.Entry:
        started = self.spell.begin()
        try:
            return await super().create_entry(request, response, key, ttl=ttl, tti=tti)
        finally:
            self.spell.end(started)

    async def get_entries(self, key: str) -> list[hishel.Entry]:
        started = self.spell.begin()
        try:
            return await super().get_entries(key)
        finally:
            self.spell.end(started)

    async def update_headers(self, id: uuid.UUID, headers: hishel.Headers) -> None:
        started = self.spell.begin()
        try:
            await super().update_headers(id, headers)
        finally:
            self.spell.end(started)

    async def remove_entry(self, id: uuid.UUID) -> None:
        started = self.spell.begin()
        try:
            await super().remove_entry(id)
        finally:
            self.spell.end(started)
