"""The cold tier: answers that never change (or not for a long, stated time), kept
until they are the least recently used past a size bound. Strictly private.

A profile marks such answers (``ApiProfile.immutable``); the caching layer keeps them
here as well as in hishel's storage, and answers from here after the hot tier misses
and before the warm tier is read. Nothing here expires with freshness, ``max_stale``
or the warm tier's retention: an entry leaves when its own stated time is up, or
when the store is over ``cold_bytes`` and it is the least recently used.

Under a Redis backend the store is in Redis (``_redis.RedisColdStore``, keys without
TTL under ``{prefix}:cold:``). Otherwise it is one SQLite file, ``cold.db`` in the
state directory, shared by every process using that directory. Tables::

    entries (key PRIMARY KEY, profile, status, headers JSON, body, size, cost, stored,
             expires, used) used: a sequence number, the LRU order (clock-independent);
                            cost: the quota units the answer cost when fetched
    windows (series, start, end, key)   what ``ApiProfile.snapshot`` says an entry
                                        covers: a request for a moment inside it is
                                        answered by that entry
    savings (profile PRIMARY KEY, hits, saved)   per profile: hits, and the quota units
                                                 they did not spend (``status``)

The store never fails a request: an error reading it is a miss, an error writing it
leaves the answer unkept (logged once at WARNING, then at DEBUG).
"""

from __future__ import annotations

import abc
import contextlib
import json
import logging
import math
import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

import attrs
import hishel
import httpx

from ._info import Call
from ._retention import stored_headers
from ._snapshots import Snapshot
from ._state._recovery import check, is_corruption, set_aside

logger = logging.getLogger("quotaflow")

COLD_FILE = "cold.db"
# The default bound of the cold store (``make_client(cold_bytes=...)``).
COLD_BYTES = 256 * 2**20
BUSY_TIMEOUT = 2.0
WAL_LIMIT = 2**20
# ResponseInfo.tier of its hits.
COLD = "cold"

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
# Restated on every hit (as the hot tier does), or never replayed from a store.
_DROPPED = frozenset({"age", "content-length", "transfer-encoding", "set-cookie", "set-cookie2"})


@attrs.frozen
class ColdEntry:
    """One kept answer: the body as it came (in its Content-Encoding)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    stored: float
    expires: float | None  # None: for good

    def response(self, now: float) -> httpx.Response:
        """An unread response over the body, as the hot tier builds its hits."""
        age = max(0, int(now - self.stored))
        headers = [*self.headers, ("content-length", str(len(self.body))), ("age", str(age))]
        return httpx.Response(self.status, headers=headers, stream=httpx.ByteStream(self.body))

    def ttl(self, now: float) -> float | None:
        """Seconds it is kept for yet (None: for good)."""
        return None if self.expires is None else max(0.0, self.expires - now)


@attrs.frozen
class ColdStats:
    """What ``quotaflow status`` shows of the cold store (of one profile's entries)."""

    entries: int
    size: int
    hits: int
    saved: int


STATS_SQL = (
    "SELECT profile, SUM(entries), SUM(size), SUM(hits), SUM(saved) FROM ("
    " SELECT profile, COUNT(*) AS entries, SUM(size) AS size, 0 AS hits, 0 AS saved"
    " FROM entries GROUP BY profile"
    " UNION ALL SELECT profile, 0, 0, hits, saved FROM savings) GROUP BY profile"
)


def read_stats(rows: Iterable[tuple[Any, ...]]) -> dict[str, ColdStats]:
    """:data:`STATS_SQL`'s rows, per profile."""
    return {
        str(profile): ColdStats(int(count or 0), int(size or 0), int(hits or 0), int(saved or 0))
        for profile, count, size, hits, saved in rows
    }


def kept_headers(headers: httpx.Headers, secrets: Collection[str]) -> tuple[tuple[str, str], ...]:
    """The headers as kept: redacted as the warm tier stores them (``_retention``),
    without those a hit restates."""
    grouped: dict[str, list[str]] = {}
    for name, value in headers.multi_items():
        grouped.setdefault(name.lower(), []).append(value)
    redacted = stored_headers(hishel.Headers(grouped), secrets)
    return tuple(
        (name, value)
        for name in redacted
        if name not in _DROPPED
        for value in redacted.get_list(name) or ()
    )


class ColdStore(abc.ABC):
    """Where answers that never change are kept: SQLite (:class:`SqliteColdStore`) or
    Redis (``_redis.RedisColdStore``). No method raises: a failure is a miss, or an
    answer left unkept."""

    max_bytes: int

    @abc.abstractmethod
    def get(self, key: str, now: float, *, touch: bool = True) -> ColdEntry | None:
        """The entry kept under ``key``, or None; a hit becomes the most recently used
        and counts the quota units it saved (unless ``touch`` is False: a plan)."""

    @abc.abstractmethod
    def find(self, series: str, at: float, now: float, *, touch: bool = True) -> ColdEntry | None:
        """The entry whose window in ``series`` covers the moment ``at``, or None."""

    @abc.abstractmethod
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
        """Keep ``response`` (``body`` as it came) for ``keep_for`` seconds (``math.inf``:
        for good), evicting the least recently used entries past the bound. Returns
        whether it is kept (not if it alone is over the bound)."""

    @abc.abstractmethod
    def profile_stats(self) -> dict[str, ColdStats]:
        """Per profile: entries, bytes, hits and the units they saved."""

    def stats(self) -> ColdStats:
        """Every profile's entries together."""
        found = list(self.profile_stats().values())
        return ColdStats(
            sum(stats.entries for stats in found),
            sum(stats.size for stats in found),
            sum(stats.hits for stats in found),
            sum(stats.saved for stats in found),
        )

    def close(self) -> None:  # noqa: B027 - stores with resources override it
        pass


class SqliteColdStore(ColdStore):
    """The cold store in ``cold.db``: one connection shared by a process's threads."""

    def __init__(self, path: Path, max_bytes: int, secrets: Collection[str] = ()) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._secrets = secrets
        self._lock = threading.RLock()
        self._warned = False
        self._connection: sqlite3.Connection | None = None
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
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def series_of(call: Call, snapshot: Snapshot) -> str:
    """A snapshot's series, partitioned by credential as the storage key is (unless
    the profile's answers are the same for every credential)."""
    if call.profile.shared_answers or call.account is None:
        return snapshot.series
    return f"{snapshot.series}\ncredential={call.account}"


def _guarded_snapshot(
    call: Call, request: httpx.Request, response: httpx.Response | None
) -> Snapshot | None:
    rule = call.profile.snapshot
    if rule is None:
        return None
    try:
        found = rule(request, response)
    except Exception:
        logger.warning(
            "profile %s: snapshot() failed, ignoring it", call.profile.name, exc_info=True
        )
        return None
    return found if isinstance(found, Snapshot) else None


def cold_lookup(
    cold: ColdStore, call: Call, request: httpx.Request, now: float, *, touch: bool = True
) -> ColdEntry | None:
    """The cold store's answer to ``request`` (the redacted one): kept under its key,
    else the entry whose snapshot window covers the moment it asks for."""
    entry = cold.get(call.key, now, touch=touch)
    if entry is not None or call.profile.snapshot is None:
        return entry
    asked = _guarded_snapshot(call, request, None)
    if asked is None:
        return None
    return cold.find(series_of(call, asked), asked.start, now, touch=touch)


def cold_keep(
    cold: ColdStore,
    call: Call,
    request: httpx.Request,
    response: httpx.Response,
    body: bytes,
    keep_for: float,
    now: float,
) -> bool:
    """Keep an answer the profile judged immutable, with the window it covers."""
    window = None
    covered = _guarded_snapshot(call, request, response)
    if covered is not None and covered.end > covered.start:
        window = (series_of(call, covered), covered.start, covered.end)
    return cold.put(
        call.key,
        response,
        body,
        now=now,
        keep_for=keep_for,
        cost=call.cost,
        profile=call.profile.name,
        window=window,
    )
