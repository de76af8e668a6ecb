"""The cold store in one SQLite file, ``cold.db`` in the state directory, shared by
every process using that directory (under Redis: ``_redis_cold.py``). Strictly private.

Tables::

    entries (key PRIMARY KEY, profile, status, headers JSON, body, size, cost, stored,
             expires, used) used: a sequence number, the LRU order (clock-independent);
                            cost: the quota units the answer cost when fetched
    windows (series, start, end, key)   what ``ApiProfile.snapshot`` says an entry
                                        covers: a request for a moment inside it is
                                        answered by that entry
    savings (profile PRIMARY KEY, hits, saved)   per profile: hits, and the quota units
                                                 they did not spend (``status``)
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sqlite3
import threading
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import httpx

from .._cold import STATS_SQL, ColdEntry, ColdStats, ColdStore, kept_headers, read_stats
from ._recovery import check, is_corruption, set_aside

logger = logging.getLogger("quotaflow")

BUSY_TIMEOUT = 2.0
WAL_LIMIT = 2**20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY, profile TEXT NOT NULL, status INTEGER NOT NULL, headers TEXT NOT NULL,
    body BLOB NOT NULL, size INTEGER NOT NULL, cost INTEGER NOT NULL,
    stored REAL NOT NULL, expires REAL, used INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS entries_used ON entries (used);
CREATE TABLE IF NOT EXISTS windows (
    series TEXT NOT NULL, start REAL NOT NULL, end REAL NOT NULL, key TEXT NOT NULL,
    PRIMARY KEY (series, start));
CREATE INDEX IF NOT EXISTS windows_key ON windows (key);
CREATE TABLE IF NOT EXISTS savings (
    profile TEXT PRIMARY KEY, hits INTEGER NOT NULL, saved INTEGER NOT NULL);
"""


class SqliteColdStore(ColdStore):
    """The cold store in ``cold.db``: one connection shared by a process's threads."""

    def __init__(self, path: Path, max_bytes: int, secrets: Collection[str] = ()) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._secrets = secrets
        self._lock = threading.RLock()
        self._warned = False
        self._connection: sqlite3.Connection | None = None
        # holds_none's own connection, which never waits (the event loop asks), and
        # its lock, never waited for either.
        self._peeker: sqlite3.Connection | None = None
        self._peek_lock = threading.Lock()
        check(path)
        try:
            self._connection = self._open()
        except sqlite3.Error as exc:
            self._failed(exc)

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT
        )
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            # Once checkpointed, the log goes back to this size: the file stays near the
            # bound (freed pages are reused) instead of keeping its largest log.
            connection.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
            connection.execute(f"PRAGMA wal_autocheckpoint={WAL_LIMIT // 4096}")
            connection.executescript(_SCHEMA)
        except BaseException:
            connection.close()
            raise
        return connection

    def _failed(self, exc: sqlite3.Error) -> None:
        """Log, and rebuild a corrupt file; the operation carries on without the store."""
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        logger.log(level, "quotaflow: the cold store %s failed: %s", self.path, exc)
        if not is_corruption(exc):
            return
        with contextlib.suppress(sqlite3.Error):
            if self._connection is not None:
                self._connection.close()
        self._connection = None
        self._drop_peeker()  # it reads the file set aside: the new one is another
        try:
            set_aside(self.path, exc)
            self._connection = self._open()
        except (OSError, sqlite3.Error):
            logger.warning("quotaflow: cannot rebuild the cold store %s", self.path)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        connection = self._connection
        if connection is None:
            raise sqlite3.OperationalError("the cold store is not open")
        cursor = connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
            cursor.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                cursor.execute("ROLLBACK")
            raise

    def holds_none(self, key: str) -> bool:
        """See :meth:`ColdStore.holds_none`: a read in WAL mode, on a connection that
        never waits (busy: unsure)."""
        if self._connection is None or not self._peek_lock.acquire(blocking=False):
            return False
        try:
            if self._peeker is None:
                self._peeker = sqlite3.connect(str(self.path), timeout=0, check_same_thread=False)
            found = self._peeker.execute("SELECT 1 FROM entries WHERE key = ?", (key,))
            return found.fetchone() is None
        except sqlite3.Error:
            return False
        finally:
            self._peek_lock.release()

    def _drop_peeker(self) -> None:
        with self._peek_lock:
            if self._peeker is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._peeker.close()
                self._peeker = None

    def get(self, key: str, now: float, *, touch: bool = True) -> ColdEntry | None:
        """See :meth:`ColdStore.get`. The read takes no lock (a miss, the common case,
        writes nothing); only a hit or an expired entry opens a write transaction."""
        try:
            with self._lock:
                row = self._read(
                    "SELECT profile, status, headers, body, cost, stored, expires FROM entries"
                    " WHERE key = ?",
                    (key,),
                )
                if row is None:
                    return None
                profile, status, headers, body, cost, stored, expires = row
                if expires is not None and expires <= now:
                    with self._transaction() as cur:
                        self._remove(cur, key)
                    return None
                if touch:
                    with self._transaction() as cur:
                        self._touch(cur, key, profile, cost)
        except sqlite3.Error as exc:
            with self._lock:
                self._failed(exc)
            return None
        pairs = tuple((str(name), str(value)) for name, value in json.loads(headers))
        return ColdEntry(status, pairs, bytes(body), stored, expires)

    def _read(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        connection = self._connection
        if connection is None:
            raise sqlite3.OperationalError("the cold store is not open")
        row: tuple[Any, ...] | None = connection.execute(sql, args).fetchone()
        return row

    def _touch(self, cur: sqlite3.Cursor, key: str, profile: str, cost: int) -> None:
        cur.execute(
            "UPDATE entries SET used = (SELECT COALESCE(MAX(used), 0) + 1 FROM entries)"
            " WHERE key = ?",
            (key,),
        )
        cur.execute(
            "INSERT INTO savings (profile, hits, saved) VALUES (?, 1, ?)"
            " ON CONFLICT (profile) DO UPDATE SET hits = hits + 1, saved = saved + excluded.saved",
            (profile, cost),
        )

    def find(self, series: str, at: float, now: float, *, touch: bool = True) -> ColdEntry | None:
        try:
            with self._lock:
                # The window starting last at or before ``at`` (windows of one series
                # do not overlap): one index probe, however many the series has.
                row = self._read(
                    "SELECT key, end FROM windows WHERE series = ? AND start <= ?"
                    " ORDER BY start DESC LIMIT 1",
                    (series, at),
                )
        except sqlite3.Error as exc:
            with self._lock:
                self._failed(exc)
            return None
        if row is None or row[1] <= at:
            return None
        return self.get(row[0], now, touch=touch)

    def put(
        self,
        key: str,
        response: httpx.Response,
        body: bytes,
        *,
        now: float,
        keep_for: float,
        cost: int = 0,
        profile: str = "",
        window: tuple[str, float, float] | None = None,
    ) -> bool:
        size = len(body)
        if size > self.max_bytes or keep_for <= 0:
            return False
        headers = json.dumps(kept_headers(response.headers, self._secrets))
        expires = None if math.isinf(keep_for) else now + keep_for
        try:
            with self._lock, self._transaction() as cur:
                self._remove(cur, key)
                cur.execute(
                    "INSERT INTO entries (key, profile, status, headers, body, size, cost,"
                    " stored, expires, used) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
                    " (SELECT COALESCE(MAX(used), 0) + 1 FROM entries))",
                    (key, profile, response.status_code, headers, body, size, cost, now, expires),
                )
                if window is not None:
                    cur.execute(
                        "INSERT OR REPLACE INTO windows (series, start, end, key)"
                        " VALUES (?, ?, ?, ?)",
                        (*window, key),
                    )
                self._evict(cur)
        except sqlite3.Error as exc:
            with self._lock:
                self._failed(exc)
            return False
        return True

    def _evict(self, cur: sqlite3.Cursor) -> None:
        (total,) = cur.execute("SELECT COALESCE(SUM(size), 0) FROM entries").fetchone()
        while total > self.max_bytes:
            rows = cur.execute("SELECT key, size FROM entries ORDER BY used LIMIT 64").fetchall()
            if not rows:
                return
            for key, size in rows:
                self._remove(cur, key)
                total -= size
                if total <= self.max_bytes:
                    return

    def _remove(self, cur: sqlite3.Cursor, key: str) -> None:
        cur.execute("DELETE FROM entries WHERE key = ?", (key,))
        cur.execute("DELETE FROM windows WHERE key = ?", (key,))

    def profile_stats(self) -> dict[str, ColdStats]:
        try:
            with self._lock, self._transaction() as cur:
                rows = cur.execute(STATS_SQL).fetchall()
        except sqlite3.Error as exc:
            with self._lock:
                self._failed(exc)
            rows = []
        return read_stats(rows)

    def close(self) -> None:
        self._drop_peeker()
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
