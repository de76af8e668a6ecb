"""Storing an answer in hishel's SQLite tables in one transaction. Part of
``_hishel.py``'s fence (it relies on the layout of hishel 2.0's tables, its cleanup
and its private helpers; see there). Strictly private.

hishel's own store writes each answer in five transactions of their own: its cleanup,
the entry (hidden), each 128 KiB chunk of the body as it is read, and the entry shown
once the body has ended; our shape row was a sixth. Each is a commit to ``cache.db``'s
WAL, and in the async stack each statement was a hop to a worker thread. Here the rows
wait in memory until the body ends (or a full chunk is due), then go in one
``BEGIN IMMEDIATE`` transaction: cleanup, the entry (shown at once: until then there
was no row to hide), its shape and its body. What a reader sees is as before: nothing
under the key until the whole body is stored. A body past one chunk writes its entry
hidden with the first chunk, and shows it with the last, as hishel does.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Protocol

import anyio
import attrs
import hishel
from hishel._core._storages._sync_sqlite import (
    CLEANUP_BATCH_SIZE,
    EVICTION_BATCH_SIZE,
    EVICTION_MAX_BATCHES,
    HIDDEN,
    STORAGE_CHUNK_SIZE,
)

from ._hishel_shapes import KEEP_SHAPE

__all__ = ["Pending", "Writer", "asaving", "drop", "saving", "write"]

logger = logging.getLogger("quotaflow")

_INSERT_ENTRY = (
    "INSERT INTO entries (id, cache_key, data, expires_at, last_accessed_at, chunk_count,"
    " ttl_deadline, tti) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_CHUNK = "INSERT INTO streams (entry_id, chunk_number, chunk_data) VALUES (?, ?, ?)"
_SHOW = "UPDATE entries SET chunk_count = ?, expires_at = ?, last_accessed_at = ? WHERE id = ?"
_TOUCH = "UPDATE entries SET last_accessed_at = ? WHERE id = ?"
_DROP = "DELETE FROM entries WHERE id = ?"
# hishel's _reclaim_space, without its commits (they would end this transaction).
_EXPIRED = (
    "DELETE FROM entries WHERE id IN ("
    " SELECT id FROM entries WHERE expires_at < ? AND last_accessed_at < ? LIMIT ?)"
)
_EVICT = (
    "DELETE FROM entries WHERE id IN ("
    " SELECT id FROM entries WHERE last_accessed_at < ? ORDER BY last_accessed_at LIMIT ?)"
)


@attrs.define
class Pending:
    """An entry being stored: its rows, and the body read so far not yet written."""

    id: bytes
    key: bytes
    data: bytes  # hishel's packing of the request and the response head
    ttl_deadline: float | None
    tti: float | None
    shape: tuple[object, ...] | None
    limit: int | None  # past this many body bytes, not stored (hishel's limit)
    touched: float  # the entry's last use as written
    inserted: bool = False
    chunks: int = 0
    total: int = 0
    saving: bool = True
    buffer: bytearray = attrs.field(factory=bytearray)

    def take(self, chunk: bytes) -> list[bytes]:
        """Add ``chunk`` of the body; the full stored chunks now due to be written."""
        if not self.saving:
            return []
        self.total += len(chunk)
        if self.limit is not None and self.total > self.limit:
            self.saving = False
            self.buffer.clear()
            return []
        self.buffer += chunk
        due = []
        while len(self.buffer) >= STORAGE_CHUNK_SIZE:
            due.append(bytes(self.buffer[:STORAGE_CHUNK_SIZE]))
            del self.buffer[:STORAGE_CHUNK_SIZE]
        return due

    def rest(self) -> bytes:
        rest = bytes(self.buffer)
        self.buffer.clear()
        return rest


def _room(storage: hishel.SqliteStorage, cursor: sqlite3.Cursor, now: float) -> bool:
    """hishel's cleanup before a store (``_reclaim_space``) inside our transaction:
    whether there is room for one more entry."""
    unused_since = now - storage.soft_delete_ttl
    cursor.execute(_EXPIRED, (now, unused_since, CLEANUP_BATCH_SIZE))
    if storage.max_size is None:
        return True
    for _ in range(EVICTION_MAX_BATCHES):
        if storage._database_size(cursor) <= storage.max_size:
            return True
        cursor.execute(_EVICT, (unused_since, EVICTION_BATCH_SIZE))
        if cursor.rowcount == 0:
            break
    return storage._database_size(cursor) <= storage.max_size


def _rows(
    storage: hishel.SqliteStorage,
    cursor: sqlite3.Cursor,
    pending: Pending,
    chunk: bytes,
    last: bool,
) -> bool:
    """The statements of one write (see :func:`write`); False: nothing to store."""
    now = time.time()
    shown = storage._expires_at(pending.ttl_deadline, pending.tti, now) if last else HIDDEN
    count = pending.chunks + (1 if chunk else 0)
    if not pending.inserted:
        if not _room(storage, cursor, now):
            return False
        entry = (pending.id, pending.key, pending.data, shown, now, count if last else None)
        cursor.execute(_INSERT_ENTRY, (*entry, pending.ttl_deadline, pending.tti))
        pending.touched = now
        if pending.shape is not None:
            try:  # no shape: hishel answers that entry's reads
                cursor.execute(KEEP_SHAPE, pending.shape)
            except sqlite3.Error:
                logger.debug("quotaflow: cannot keep an entry's shape", exc_info=True)
    if chunk:
        cursor.execute(_INSERT_CHUNK, (pending.id, pending.chunks, chunk))
    if last and pending.inserted:
        cursor.execute(_SHOW, (count, shown, now, pending.id))
        return cursor.rowcount == 1  # removed meanwhile: not stored
    if pending.inserted and now - pending.touched >= storage._touch_interval:
        pending.touched = now  # a slow body: kept from cleanup, as hishel does
        cursor.execute(_TOUCH, (now, pending.id))
    return True


def write(storage: hishel.SqliteStorage, pending: Pending, chunk: bytes, last: bool) -> bool:
    """One transaction: the entry and its shape if not yet written (after hishel's
    cleanup), ``chunk`` of its body, and with ``last`` the entry shown. False: not
    stored (no room, removed meanwhile, or a failure, logged as hishel logs its own)."""
    try:
        with storage._lock:
            cursor = storage._ensure_connection().cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                stored = _rows(storage, cursor, pending, chunk, last)
                # No room for a new entry: hishel's cleanup is kept all the same (it
                # commits it first), so the next store goes on from what it deleted.
                kept = stored or not pending.inserted
                cursor.execute("COMMIT" if kept else "ROLLBACK")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
    except Exception:
        logger.warning("quotaflow: could not store an answer; served uncached", exc_info=True)
        return False
    if stored:
        pending.inserted = True
        pending.chunks += 1 if chunk else 0
    return stored


def drop(storage: hishel.SqliteStorage, pending: Pending) -> None:
    """An entry given up on (its body failed, stopped or grew past the limit): its rows,
    if any were written, go (hishel's cleanup would remove them later anyway)."""
    if pending.inserted:
        storage._try_write(_DROP, (pending.id,))


class Writer(Protocol):
    """The storage's :func:`write` and :func:`drop` (``SqliteCache``'s, which bound
    their busy waits)."""

    def write_rows(self, pending: Pending, chunk: bytes, last: bool) -> bool: ...

    def drop_rows(self, pending: Pending) -> None: ...


def saving(storage: Writer, body: Iterable[bytes], pending: Pending) -> Iterator[bytes]:
    """``body`` unchanged, stored as it is read (hishel's ``_save_stream``)."""
    completed = False
    try:
        for chunk in body:
            for due in pending.take(chunk):
                # Once a write fails, no later chunk is written: it would be stored in
                # the failed one's place, the body shown with a part missing.
                pending.saving = pending.saving and storage.write_rows(pending, due, False)
            yield chunk
        if pending.saving:
            completed = storage.write_rows(pending, pending.rest(), True)
    finally:
        if not completed:
            storage.drop_rows(pending)


async def asaving(
    storage: Writer, body: AsyncIterable[bytes], pending: Pending
) -> AsyncIterator[bytes]:
    """:func:`saving` for the async stack: each write one hop to a worker thread (the
    whole answer's, for a body under one stored chunk)."""
    completed = False
    try:
        async for chunk in body:
            for due in pending.take(chunk):
                if pending.saving:  # as in :func:`saving`: none after a failed one
                    written = await anyio.to_thread.run_sync(
                        storage.write_rows, pending, due, False
                    )
                    pending.saving = written
            yield chunk
        if pending.saving:
            rest = pending.rest()
            completed = await anyio.to_thread.run_sync(storage.write_rows, pending, rest, True)
    finally:
        if not completed and pending.inserted:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(storage.drop_rows, pending)
