"""The one place quotaflow relies on hishel beyond its public API, fenced as
``_network.py`` fences httpx's internals. Strictly private.

Checked against hishel 2.0.x (``CHECKED``). What is relied on:

- that :class:`hishel.SqliteStorage` uses the ``connection`` it is given (public) for
  every statement, so its busy timeout is its own (:class:`SqliteCache`; the async
  stack's storage, ``_hishel_async.AsyncSqliteCache``, runs a :class:`SqliteCache`'s
  operations in worker threads);
- the layout of :class:`hishel.SqliteStorage`'s table, ``entries (id, expires_at,
  last_accessed_at, ...)``, to add the index its cleanup needs (:func:`index_cache`).
  If a later hishel changes it, creating the index fails and is logged at WARNING: the
  cache still works, only stores get slower as it grows;
- the layout of both its tables (``entries (id, cache_key, data, expires_at,
  last_accessed_at, chunk_count, tti)``, ``streams (entry_id, chunk_number,
  chunk_data)``), the packing of ``data`` (``_packing.unpack``), the touch of an
  entry's last use (``_touch_interval``, ``_try_write``) and the lock and connection of
  its sync storage (``_lock``, ``_ensure_connection``), to read a fresh answer in one
  query (:class:`SqliteCache` ``fresh``/``peek``, over the shapes kept beside the
  entries, :data:`SHAPES`). If a later hishel changes them, that query fails (logged
  at DEBUG) and every warm read is left to hishel: slower, never wrong;
- to store an answer in one transaction (``_hishel_store``): the layout of both tables
  as above, the packing (``_packing.pack``), the statements and constants of its
  cleanup before a store (``_reclaim_space``, ``_database_size``, ``HIDDEN``, its batch
  sizes, ``STORAGE_CHUNK_SIZE``) and its TTL helpers (``_limits``, ``_expires_at``). If
  a later hishel changes them, stores fail (logged at WARNING) and answers are served
  unstored, which ``CHECKED`` keeps from passing unnoticed;
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
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import hishel
from hishel._core._storages._packing import pack, unpack

from .._hot import HotEntry
from ._db import BUSY_TIMEOUT
from ._hishel_shapes import (
    CREATE_SHAPES,
    DROP_SHAPE,
    ENTRY,
    KEEP_SHAPE,
    READ_FRESH,
    SHAPES,
    TOUCH,
    Made,
    answer,
    shape_row,
)
from ._hishel_store import Pending, drop, saving, write
from ._spell import Spell

__all__ = ["CHECKED", "EXPIRY_INDEX", "SHAPES", "SqliteCache", "index_cache"]

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
    """Give the hishel cache at ``path`` the index its cleanup needs, and the table of
    shapes beside its entries. Never raises: without them the cache still works, only
    slower."""
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
            for statement in (_CREATE_EXPIRY_INDEX, *CREATE_SHAPES):
                connection.execute(statement)
    except sqlite3.Error as exc:
        logger.warning("quotaflow: cannot index the cache %s: %s", path, exc)


# What hishel's get_entries selects, but whether there is any (see SqliteCache.holds_none).
HOLDS = (
    "SELECT 1 FROM entries WHERE cache_key = ? AND (expires_at IS NULL OR expires_at > ?) LIMIT 1"
)


def _connect(path: Path) -> sqlite3.Connection:
    """The connection hishel's storage is given (its own would wait 5 s per statement
    for another process's lock): as ``state.db``'s, waiting ``BUSY_TIMEOUT``."""
    return sqlite3.connect(
        str(path), check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT
    )


class SqliteCache(hishel.SqliteStorage):
    """hishel's SQLite storage with ``cache.db``'s busy waits bounded (:class:`Spell`),
    each entry's shape kept beside it, and a fresh answer read in one query
    (``_shapes.FreshRows``)."""

    def __init__(self, path: Path) -> None:
        connection = _connect(path)
        super().__init__(connection=connection, database_path=path)
        self.spell = Spell(connection, path, BUSY_TIMEOUT)
        # peek's own connection (opened on first use), which never waits for a lock.
        self._peeker: sqlite3.Connection | None = None
        self._peek_lock = threading.Lock()
        self._made: Made = {}
        self.get_entries("")  # hishel sets the file up now, so every request has our wait

    def fresh(self, key: str, url: str, now: float, limit: int) -> HotEntry | None:
        wall = time.time()  # hishel's expiry is on the wall clock, freshness on ours
        found = {"key": key.encode(), "url": url, "limit": limit, "now": now, "wall": wall}
        started = self.spell.begin()
        try:
            with self._lock:
                rows = self._ensure_connection().execute(READ_FRESH, found).fetchall()
            entry, entry_id, used = answer(rows, self._made)
            # As hishel's get_entries: its last use kept current (at most once a minute),
            # and not served if it was removed since the read.
            touch = entry is not None and wall - used >= self._touch_interval
            if touch and self._try_write(TOUCH, (wall, entry_id, wall)) == 0:
                return None
            return entry
        finally:
            self.spell.end(started)

    def peek(self, key: str, url: str, now: float, limit: int) -> tuple[bool, HotEntry | None]:
        wall = time.time()
        found = {"key": key.encode(), "url": url, "limit": limit, "now": now, "wall": wall}
        rows = self._peek_rows(READ_FRESH, found)
        if rows is None:
            return False, None
        entry, _, used = answer(rows, self._made)
        if entry is not None and wall - used >= self._touch_interval:
            return False, None  # its last use is due a write: fresh() does it
        return True, entry

    def holds_none(self, key: str) -> bool:
        """True only if :meth:`get_entries` surely finds no entry under ``key``, read
        without waiting (the event loop may ask, a miss then makes no hop); False when
        unsure."""
        return self._peek_rows(HOLDS, (key.encode(), time.time())) == []

    def _peek_rows(self, sql: str, parameters: Any) -> list[Any] | None:
        """Rows read on peek's own connection, or None: another thread reads with it
        (off the loop, then), the file is busy (it never waits), or anything else."""
        if not self._peek_lock.acquire(blocking=False):
            return None
        try:
            if self._peeker is None and not self._closed:
                self._peeker = sqlite3.connect(
                    str(self.database_path), timeout=0, check_same_thread=False
                )
            if self._peeker is None:
                return None
            rows: list[Any] = self._peeker.execute(sql, parameters).fetchall()
            return rows
        except Exception:
            return None
        finally:
            self._peek_lock.release()

    def close(self) -> None:
        try:
            with self._peek_lock:
                if self._peeker is not None:
                    self._peeker.close()
                    self._peeker = None
        finally:
            super().close()

    def _write(self, sql: str, parameters: tuple[object, ...]) -> bool:
        try:
            with self._lock:
                self._ensure_connection().execute(sql, parameters)
        except sqlite3.Error:  # no shape: hishel answers that entry's reads
            logger.debug("quotaflow: cannot keep an entry's shape", exc_info=True)
            return False
        return True

    def _reshape(self, id: uuid.UUID) -> None:
        """The shape of an entry whose headers hishel replaced (RFC 9111 §4.3.4)."""
        with self._lock:
            cursor = self._ensure_connection().execute(ENTRY, (id.bytes,))
            found = cursor.fetchone()
        if found is not None:
            row = shape_row(id, bytes(found[0]).decode(), *unpack(bytes(found[1])))
            self._write(KEEP_SHAPE, row) if row else self._write(DROP_SHAPE, (id.bytes,))

    def create_entry(
        self,
        request: hishel.Request,
        response: hishel.Response,
        key: str,
        *,
        ttl: float | None = None,
        tti: float | None = None,
    ) -> hishel.Entry:
        # hishel's create_entry, its rows written in one transaction (``_hishel_store``).
        entry, pending = self.pending(request, response, key, ttl, tti)
        body = response.stream if response.stream is not None else ()
        assert isinstance(body, Iterable)
        return replace(entry, response=replace(response, stream=saving(self, body, pending)))

    def pending(
        self,
        request: hishel.Request,
        response: hishel.Response,
        key: str,
        ttl: float | None,
        tti: float | None,
    ) -> tuple[hishel.Entry, Pending]:
        """A new entry, and its rows to be written as its body is read."""
        # Closed: hishel's RuntimeError, now. Not by taking the connection's lock: the
        # async stack runs this on its event loop, while a worker thread may hold the
        # lock for a whole store, waiting out another process's (BUSY_TIMEOUT).
        if self._closed:
            raise RuntimeError("SqliteStorage is closed and can no longer be used.")
        now = time.time()
        ttl_deadline, tti = self._limits(ttl, tti, now)
        entry = hishel.Entry(id=uuid.uuid4(), request=request, response=response)
        limits = [limit for limit in (self.max_stream_size, self.max_size) if limit is not None]
        pending = Pending(
            id=entry.id.bytes,
            key=key.encode(),
            data=pack(request, response),
            ttl_deadline=ttl_deadline,
            tti=tti,
            shape=shape_row(entry.id, key, request, response),
            limit=min(limits, default=None),
            touched=now,
        )
        return entry, pending

    def write_rows(self, pending: Pending, chunk: bytes, last: bool) -> bool:
        started = self.spell.begin()
        try:
            return write(self, pending, chunk, last)
        finally:
            self.spell.end(started)

    def drop_rows(self, pending: Pending) -> None:
        drop(self, pending)

    def get_entries(self, key: str) -> list[hishel.Entry]:
        started = self.spell.begin()
        try:
            return super().get_entries(key)
        finally:
            self.spell.end(started)

    def update_headers(self, id: uuid.UUID, headers: hishel.Headers) -> None:
        started = self.spell.begin()
        try:
            # The old shape goes first: should the new one not be written, the warm read
            # does without one (hishel's read is right), never with the old freshness.
            # If even that cannot be written, the entry keeps its old headers too.
            if self._write(DROP_SHAPE, (id.bytes,)):
                super().update_headers(id, headers)
                self._reshape(id)
        finally:
            self.spell.end(started)

    def remove_entry(self, id: uuid.UUID) -> None:
        started = self.spell.begin()
        try:
            super().remove_entry(id)
        finally:
            self.spell.end(started)
