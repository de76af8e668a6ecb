"""The odds history archive (the "cold tier"): every fresh odds answer, kept per outcome.

:class:`OddsHistory` is a subscriber the plugin starts for every client. On the request's
thread it only matches the answer and queues its body (no parsing, no I/O); a background
worker writes the queued bodies in batches into ``odds_history.db`` in the client's state
directory. The queue is bounded (MAX_PENDING bodies, MAX_PENDING_BYTES bytes): when a
burst outruns the writer, the oldest bodies are dropped and counted (:meth:`OddsHistory.stats`
in the process, :func:`dropped_bodies` from the file). ``close()`` writes what is queued
within a deadline (CLOSE_SECONDS) and drops, counts and reports whatever is left.

A row is stored only when an outcome's price or point differs from the latest row stored
for it. The worker cuts a body between its games without parsing it, and parses only the
games whose bytes it has not archived before (or for which anything was written since,
by it or by another process): a game that did not move cannot change a row.
:func:`history` reads an event's rows back; :func:`movement` turns them into price
changes; :func:`archived_events` lists the events stored.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

__all__ = [
    "DB_NAME",
    "ENV_DAYS",
    "ArchiveStats",
    "ArchivedEvent",
    "HistoryRow",
    "OddsHistory",
    "archive_path",
    "archived_events",
    "dropped_bodies",
    "history",
    "movement",
    "start",
]

logger = logging.getLogger("quotaflow")

DB_NAME = "odds_history.db"
ENV_DAYS = "QUOTAFLOW_ODDS_HISTORY_DAYS"
PROFILE_NAME = "theoddsapi"
#: The worker writes a batch when this many bodies wait, when half the byte bound waits,
#: or FLUSH_SECONDS after the first of them was queued (and at close).
FLUSH_SECONDS = 5.0
FLUSH_BODIES = 64
#: The queue's bounds: past either, the oldest queued bodies are dropped (and counted).
MAX_PENDING = 256
MAX_PENDING_BYTES = 16 * 2**20
#: A worker idle this long ends (another starts with the next answer).
IDLE_SECONDS = 60.0
#: How long ``close()`` waits for the worker to write what is queued.
CLOSE_SECONDS = 2.0
PRUNE_SECONDS = 3600.0
#: Events whose bytes the worker remembers as archived (a digest each, ~200 bytes).
SEEN_EVENTS = 4096
BUSY_TIMEOUT = 1.0
_ODDS_PATH = re.compile(r"^/v4/(?:historical/)?sports/([^/]+)/(?:events/[^/]+/)?odds/?$")
_COLUMNS = (
    "event_id, sport, commence_time, bookmaker, market, outcome, price, point, last_update,"
    " fetched_at"
)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS odds_history (event_id TEXT NOT NULL, sport TEXT NOT NULL,"
    " commence_time TEXT, bookmaker TEXT NOT NULL, market TEXT NOT NULL, outcome TEXT NOT NULL,"
    " price REAL NOT NULL, point REAL, last_update TEXT, fetched_at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS odds_history_key"
    " ON odds_history (event_id, bookmaker, market, outcome, fetched_at)",
    "CREATE INDEX IF NOT EXISTS odds_history_age ON odds_history (fetched_at)",
    "CREATE TABLE IF NOT EXISTS odds_history_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)
# The latest stored (price, point) of each outcome of one event: one indexed scan.
_LATEST = (
    "SELECT bookmaker, market, outcome, price, point, MAX(fetched_at) FROM odds_history"
    " WHERE event_id = ? GROUP BY bookmaker, market, outcome"
)
_INSERT = f"INSERT INTO odds_history ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)"
_ADD_DROPPED = (
    "INSERT INTO odds_history_meta (name, value) VALUES ('dropped', ?)"
    " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value"
)

#: One queued answer: (sport, fetched_at, resource, body).
Pending = tuple[str, float, str, bytes]
# One outcome as parsed: (bookmaker, market, outcome, price, point, last_update).
_Outcome = tuple[str, str, str, float, float | None, str | None]
# One event as parsed: (event_id, sport, commence_time, outcomes).
_Event = tuple[str, str, str | None, list[_Outcome]]
# One event of a body: (digest of its bytes, its bytes if left unparsed, or the event).
_Part = tuple[int | None, memoryview | None, _Event | None]
# One body ready to compare: (sport, fetched_at, its events).
_Prepared = tuple[str, float, list[_Part]]


@attrs.frozen
class HistoryRow:
    """One outcome's price at one bookmaker, as fetched at ``fetched_at`` (epoch seconds)."""

    event_id: str
    sport: str
    commence_time: str | None
    bookmaker: str
    market: str
    outcome: str
    price: float
    point: float | None
    last_update: str | None
    fetched_at: float


@attrs.frozen
class ArchivedEvent:
    """One event in the archive: what :func:`archived_events` lists.

    Attributes:
        event_id: the event's id (32 hex characters).
        sport: its sport key (``americanfootball_nfl``).
        commence_time: kick-off as the API wrote it (ISO 8601, UTC), if known.
        first_fetched: when its odds were first stored (epoch seconds).
        last_fetched: when its odds were last stored as changed (epoch seconds).
        changes: rows stored: one per outcome per change of price or point.
        bookmakers: how many bookmakers' odds are stored.
    """

    event_id: str
    sport: str
    commence_time: str | None
    first_fetched: float
    last_fetched: float
    changes: int
    bookmakers: int


@attrs.frozen
class ArchiveStats:
    """What one :class:`OddsHistory` did in this process (:meth:`OddsHistory.stats`).

    Attributes:
        queued: bodies waiting for the worker now.
        queued_bytes: their size in bytes (never more than the byte bound).
        dropped: bodies never archived: the queue was full (the oldest go first), the
            file was busy or broken, or ``close()`` passed its deadline.
        archived: bodies the worker read and compared with the archive.
        unchanged: of those, bodies not parsed at all: each of their games' bytes was
            archived before, with nothing written for that game since.
        rows: rows written (changes of price or point).
    """

    queued: int
    queued_bytes: int
    dropped: int
    archived: int
    unchanged: int
    rows: int


def default_state_dir() -> Path:
    """``$QUOTAFLOW_HOME``, else the user cache directory: quotaflow's own rule."""
    if home := os.environ.get("QUOTAFLOW_HOME"):
        return Path(home).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "quotaflow"


def _text(value: Any) -> str | None:
    """Times as the API wrote them; epoch seconds (``dateFormat=unix``) become ISO 8601."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _event(event: Any, sport: str) -> _Event:
    """One event with its priced outcomes; raises ValueError (or TypeError, KeyError,
    AttributeError) on an event of another shape."""
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        raise ValueError("expected events with an id")
    key = event.get("sport_key")
    outcomes: list[_Outcome] = []
    append = outcomes.append
    for bookmaker in event.get("bookmakers") or ():
        book = str(bookmaker["key"])
        book_updated = bookmaker.get("last_update")
        if type(book_updated) is not str:
            book_updated = _text(book_updated)
        for market in bookmaker.get("markets") or ():
            name = str(market["key"])
            updated = market.get("last_update")
            if type(updated) is not str:
                updated = _text(updated) or book_updated
            for outcome in market.get("outcomes") or ():
                price, label = outcome.get("price"), outcome.get("name")
                point = outcome.get("point")
                # The common case (float prices and points) without a call per outcome.
                if type(price) is not float or not math.isfinite(price):
                    price = _number(price)
                if price is None or not isinstance(label, str):
                    continue
                if point is not None and (type(point) is not float or not math.isfinite(point)):
                    point = _number(point)
                append((book, name, label, price, point, updated))
    commence = _text(event.get("commence_time"))
    return event["id"], key if isinstance(key, str) else sport, commence, outcomes


def _events(body: bytes | memoryview, sport: str) -> list[_Event]:
    """The events of one odds body, each with its priced outcomes; raises ValueError (or
    TypeError, KeyError, AttributeError) on a body of another shape."""
    data: Any = json.loads(bytes(body))
    if isinstance(data, dict) and "data" in data:  # historical wrapper
        data = data["data"]
    events = [data] if isinstance(data, dict) else data
    if not isinstance(events, list):
        raise ValueError("expected a list of events")
    return [_event(event, sport) for event in events]


_EVENT_START = re.compile(rb'\{\s*"id"\s*:')
_BLANK = b" \t\r\n"


def _event_starts(body: bytes, start: int, end: int) -> list[int]:
    """Where ``{"id":`` opens an object (blanks allowed): ``bytes.find`` for ``"id"``,
    a few dozen times a body, rather than a regular expression tried at every brace."""
    found = []
    at = body.find(b'"id"', start, end)
    while at >= 0:
        before, after = at, at + 4
        while before > start and body[before - 1] in _BLANK:
            before -= 1
        while after < end and body[after] in _BLANK:
            after += 1
        if before > start and body[before - 1] == 0x7B and after < end and body[after] == 0x3A:
            found.append(before - 1)
        at = body.find(b'"id"', at + 4, end)
    return found


def _split(body: bytes) -> list[memoryview] | None:
    """The events of a body that is a list of events (or one event), each as its own
    bytes, found without parsing: where an object opens with ``"id"``. None when the body
    is not of that shape. A piece is trusted only once it parses alone as an event (and
    then every piece before it is one too, so each cut was between two events)."""
    start, end = 0, len(body)
    while start < end and body[start] in _BLANK:
        start += 1
    while end > start and body[end - 1] in _BLANK:
        end -= 1
    view = memoryview(body)
    if start < end and body[start] == ord("{"):
        return [view[start:end]] if _EVENT_START.match(body, start) else None
    if end - start < 2 or body[start] != ord("[") or body[end - 1] != ord("]"):
        return None
    starts = _event_starts(body, start, end)
    if not starts or body[start + 1 : starts[0]].strip(_BLANK):
        return None if body[start + 1 : end - 1].strip(_BLANK) else []
    pieces = []
    for index, begin in enumerate(starts):
        stop = starts[index + 1] if index + 1 < len(starts) else end - 1
        while stop > begin and body[stop - 1] in _BLANK:
            stop -= 1
        if index + 1 < len(starts):
            if body[stop - 1] != ord(","):
                return None
            stop -= 1
            while stop > begin and body[stop - 1] in _BLANK:
                stop -= 1
        pieces.append(view[begin:stop])
    return pieces


def parse(body: bytes, sport: str, fetched_at: float) -> list[HistoryRow]:
    """The rows of one odds body; raises ValueError (or TypeError) on a body of another shape."""
    return [
        HistoryRow(event_id, event_sport, commence, *outcome, fetched_at)
        for event_id, event_sport, commence, outcomes in _events(body, sport)
        for outcome in outcomes
    ]


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        for statement in _SCHEMA:
            db.execute(statement)
    except BaseException:
        db.close()
        raise
    return db


def _digest(body: memoryview) -> int:
    # Python's own hash of the bytes (SipHash, 64 bits, salted per process): three times
    # faster than SHA-256 here, and only ever compared within this process.
    return hash(body)


class OddsHistory:
    """Archives fresh odds answers of the ``theoddsapi`` profile into ``odds_history.db``.

    Calling it (the subscriber) only queues the body; a daemon worker thread, started with
    the first body, parses and writes batches. Memory is bounded: at most ``max_pending``
    bodies and ``max_pending_bytes`` bytes wait (the oldest are dropped and counted past
    either), plus the one batch being written.

    Args:
        state_dir: the client's state directory.
        retention_days: rows fetched longer ago are deleted (checked at most hourly).
        now: the time, for retention.
        max_pending: bodies that may wait for the worker.
        max_pending_bytes: bytes of bodies that may wait for the worker.
        close_timeout: seconds ``close()`` waits for the worker to write what waits.
        write: what the worker calls with each batch (default: parse it and write the
            changes into the archive); for tests.
    """

    # The events it takes (quotaflow.events): requests to other APIs build none for it.
    profiles = frozenset({PROFILE_NAME})

    def __init__(
        self,
        state_dir: Path | str,
        *,
        retention_days: float = 90,
        now: Callable[[], float] = time.time,
        max_pending: int = MAX_PENDING,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        close_timeout: float = CLOSE_SECONDS,
        write: Callable[[Sequence[Pending]], None] | None = None,
    ) -> None:
        if not retention_days > 0:
            raise ValueError(f"retention_days must be > 0, not {retention_days!r}")
        if max_pending < 1 or max_pending_bytes < 1:
            raise ValueError("max_pending and max_pending_bytes must be >= 1")
        if not close_timeout >= 0:
            raise ValueError(f"close_timeout must be >= 0, not {close_timeout!r}")
        self.path = Path(state_dir) / DB_NAME
        self.retention = retention_days * 86400
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.close_timeout = close_timeout
        self._now = now
        self._write = write if write is not None else self._archive
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Pending] = deque()
        self._queued_bytes = 0
        self._in_flight = 0  # bodies of the batch being written
        self._worker: threading.Thread | None = None
        self._closing = False
        self._flush_now = False
        self._dropped = 0
        self._archived = self._unchanged = self._rows = 0
        # Worker-only state: the connection, drops not yet added to the file's count,
        # the file's data_version after our last write (another connection's write
        # changes it).
        self._db: sqlite3.Connection | None = None
        self._unrecorded = 0
        self._version: int | None = None
        # Per event's bytes, the event and its write count then: while no other connection
        # writes and nothing is written for that event, the same bytes change nothing.
        self._spans: dict[int, tuple[str, int]] = {}
        self._versions: dict[str, int] = {}
        self._pruned_at = -math.inf

    def hit(self, profile: str, at: float, saved: int) -> None:
        """Cache hits archive nothing; having this lets the stack count a hit without
        building an event object for it."""

    def __call__(self, event: Any) -> None:
        # Called on the request's thread: match cheaply, queue, and let the worker parse.
        if getattr(event, "profile", None) != PROFILE_NAME or not hasattr(event, "content"):
            return
        found = _ODDS_PATH.match(urlsplit(event.resource).path)
        if found is None or not 200 <= event.status < 300:
            return
        body: bytes = event.content
        with self._cond:
            if self._closing:
                self._dropped += 1
                self._unrecorded += 1
                return
            queue = self._queue
            queue.append((found.group(1), event.at, event.resource, body))
            self._queued_bytes += len(body)
            while len(queue) > self.max_pending or self._queued_bytes > self.max_pending_bytes:
                self._queued_bytes -= len(queue.popleft()[3])
                self._dropped += 1
                self._unrecorded += 1
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._run, name="quotaflow-odds-history", daemon=True
                )
                self._worker.start()
            elif self._due():
                self._cond.notify()

    def _due(self) -> bool:
        return (
            self._closing
            or self._flush_now
            or len(self._queue) >= FLUSH_BODIES
            or self._queued_bytes * 2 >= self.max_pending_bytes
        )

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closing and not self._flush_now:
                        idle = not self._cond.wait(IDLE_SECONDS)
                        if idle and not (self._queue or self._closing or self._flush_now):
                            # Idle: end, so that a client never closed leaves no thread
                            # behind; the next answer starts another worker.
                            self._worker, db, self._db = None, self._db, None
                            return
                    # Gather a batch: until one is due, or FLUSH_SECONDS have passed.
                    self._cond.wait_for(self._due, timeout=FLUSH_SECONDS)
                    if not self._queue:
                        self._flush_now = False
                        self._cond.notify_all()
                        if self._closing:
                            return
                        continue
                    batch = list(self._queue)
                    self._flush_now = False  # one flush asked for, one batch now
                    self._queue.clear()
                    self._queued_bytes = 0
                    self._in_flight = len(batch)
                try:
                    self._write(batch)
                except Exception:
                    logger.exception("quotaflow: odds history lost a batch of %d", len(batch))
                    self._lose(len(batch))
                finally:
                    del batch
                    with self._cond:
                        self._in_flight = 0
                        self._cond.notify_all()
        finally:
            if db is None:  # closing (or failing): nobody else uses the connection now
                db, self._db = self._db, None
            if db is not None:
                with contextlib.suppress(sqlite3.Error):
                    db.close()

    def _lose(self, bodies: int) -> None:
        with self._cond:
            self._dropped += bodies
            self._unrecorded += bodies

    def flush(self, timeout: float | None = None) -> bool:
        """Have the worker write what is queued now; wait for it (at most ``timeout``
        seconds). Returns whether nothing is left to write."""
        with self._cond:
            if self._worker is None:
                return True
            self._flush_now = True
            self._cond.notify_all()
            return self._cond.wait_for(
                lambda: not self._queue and not self._in_flight, timeout=timeout
            )

    def close(self) -> None:
        """Write what is queued, waiting at most ``close_timeout`` seconds; what is still
        queued then is dropped, counted and reported in one warning."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
            worker = self._worker
        if worker is None:
            return
        worker.join(self.close_timeout)
        if not worker.is_alive():
            return
        with self._cond:
            left = len(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
            self._dropped += left
            self._unrecorded += left
            writing = self._in_flight
        logger.warning(
            "quotaflow: odds history still writing after %.1f s at close: %d bodies dropped,"
            " %d still being written (%s)",
            self.close_timeout,
            left,
            writing,
            self.path,
        )

    def stats(self) -> ArchiveStats:
        """What this archive did so far in this process."""
        with self._cond:
            return ArchiveStats(
                queued=len(self._queue),
                queued_bytes=self._queued_bytes,
                dropped=self._dropped,
                archived=self._archived,
                unchanged=self._unchanged,
                rows=self._rows,
            )

    # The worker's side.

    def _archive(self, batch: Sequence[Pending]) -> None:
        """Parse a batch (outside any lock) and write its changes in one transaction; a
        busy or broken file loses the batch with one warning (and the drops are counted)."""
        now = self._now()
        cutoff = now - self.retention
        # Games archived before and still current, or met earlier in this batch, may
        # change nothing: they are parsed only if something is written for them first
        # (in _commit).
        spans, versions, met = self._spans, self._versions, set[int]()

        def current(digest: int) -> bool:
            if digest in met:
                return True
            met.add(digest)
            memo = spans.get(digest)
            return memo is not None and versions.get(memo[0], 0) == memo[1]

        prepared: list[_Prepared] = []
        for sport, fetched_at, _url, body in batch:
            if fetched_at < cutoff:
                continue
            parts = self._parts(body, sport, current)
            if parts is not None:
                prepared.append((sport, fetched_at, parts))
        with self._cond:
            unrecorded = self._unrecorded
        if not prepared and not unrecorded:
            return
        prune = now - self._pruned_at >= PRUNE_SECONDS
        try:
            if self._db is None:
                self._db = _connect(self.path)
            rows, unchanged = self._commit(
                self._db, prepared, cutoff if prune else None, unrecorded
            )
        except sqlite3.Error as exc:
            self._forget()
            logger.warning(
                "quotaflow: odds history lost %d bodies (%s): %s", len(batch), self.path, exc
            )
            self._lose(len(batch))
            return
        if prune:
            self._pruned_at = now
        with self._cond:
            self._unrecorded -= unrecorded
            self._archived += len(prepared)
            self._unchanged += unchanged
            self._rows += rows

    def _forget(self) -> None:
        self._spans.clear()
        self._versions.clear()

    @staticmethod
    def _parts(body: bytes, sport: str, current: Callable[[int], bool]) -> list[_Part] | None:
        """The events of a body: each parsed, or (bytes archived before and still
        current) left unparsed for _commit to skip; None when the body is unreadable."""
        pieces = _split(body)
        if pieces is not None:
            parts: list[_Part] = []
            for piece in pieces:
                digest = _digest(piece)
                if current(digest):
                    parts.append((digest, piece, None))
                    continue
                try:
                    parts.append((digest, None, _event(json.loads(bytes(piece)), sport)))
                except (ValueError, TypeError, KeyError, AttributeError):
                    break  # not cut between events after all: read the body whole
            else:
                return parts
        try:
            return [(None, None, event) for event in _events(body, sport)]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            logger.debug("quotaflow: odds history skips an unreadable %s body: %s", sport, exc)
            return None

    def _commit(
        self,
        db: sqlite3.Connection,
        prepared: Sequence[_Prepared],
        cutoff: float | None,
        unrecorded: int,
    ) -> tuple[int, int]:
        """One write transaction: prune, compare each body with the latest rows (in
        order), insert the changes, add the drops to the file's count. Returns the rows
        written and the bodies skipped unparsed."""
        rows: list[tuple[Any, ...]] = []
        spans, versions = dict(self._spans), dict(self._versions)
        unchanged = 0

        def current(digest: int) -> bool:
            memo = spans.get(digest)
            return memo is not None and versions.get(memo[0], 0) == memo[1]

        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA data_version").fetchone()[0]
            if cutoff is not None or version != self._version:
                # Another connection wrote, or old rows go: nothing known holds.
                if cutoff is not None:
                    db.execute("DELETE FROM odds_history WHERE fetched_at < ?", (cutoff,))
                spans.clear()
                versions.clear()
            latest: dict[str, dict[tuple[str, str, str], tuple[float, float | None]]] = {}
            for sport, fetched_at, parts in prepared:
                parsed = False
                for span, piece, event in parts:
                    if event is None:
                        if span is not None and current(span):
                            continue  # these bytes were compared, nothing written since
                        try:
                            event = _event(json.loads(bytes(piece or b"")), sport)
                        except (ValueError, TypeError, KeyError, AttributeError):
                            continue  # read alone before, so never here
                    parsed = True
                    event_id, event_sport, commence, outcomes = event
                    known = latest.get(event_id)
                    if known is None:
                        known = latest[event_id] = {
                            (book, market, name): (price, point)
                            for book, market, name, price, point, _ in db.execute(
                                _LATEST, (event_id,)
                            )
                        }
                    written = len(rows)
                    for book, market, name, price, point, updated in outcomes:
                        key = (book, market, name)
                        if known.get(key) != (price, point):
                            known[key] = (price, point)
                            row = (event_id, event_sport, commence, book, market, name)
                            rows.append((*row, price, point, updated, fetched_at))
                    if len(rows) > written:
                        versions[event_id] = versions.get(event_id, 0) + 1
                    if span is not None:
                        # The latest rows of these outcomes now hold these bytes' prices.
                        spans[span] = (event_id, versions.get(event_id, 0))
                if not parsed and parts:
                    unchanged += 1
            if rows:
                db.executemany(_INSERT, rows)
            if unrecorded:
                db.execute(_ADD_DROPPED, (unrecorded,))
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        self._version = version
        if len(spans) > SEEN_EVENTS:
            spans, versions = {}, {}
        self._spans, self._versions = spans, versions
        return len(rows), unchanged


def start(state_dir: Path) -> list[OddsHistory]:
    """The plugin's per-client start: ``$QUOTAFLOW_ODDS_HISTORY_DAYS`` (default 90) days
    of history, or none at all when it is 0."""
    raw = os.environ.get(ENV_DAYS, "").strip() or "90"
    try:
        days = float(raw)
    except ValueError:
        days = math.nan
    if not math.isfinite(days) or days < 0:
        raise ValueError(f"{ENV_DAYS} must be a number of days (0 disables), not {raw!r}")
    return [OddsHistory(state_dir, retention_days=days)] if days else []


def archive_path(state_dir: Path | str | None = None) -> Path:
    """``odds_history.db`` in ``state_dir`` (default ``$QUOTAFLOW_HOME``, else
    ``~/.cache/quotaflow``)."""
    directory = default_state_dir() if state_dir is None else Path(state_dir).expanduser()
    return (directory / DB_NAME).resolve()


def _read(state_dir: Path | str | None, query: str, parameters: Sequence[Any]) -> list[Any]:
    """The rows of one query on the archive, read only; none when there is no archive.
    A damaged file raises :class:`sqlite3.DatabaseError`."""
    path = archive_path(state_dir)
    if not path.is_file():
        return []
    with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'odds_history'").fetchone():
            return []
        return db.execute(query, parameters).fetchall()


def dropped_bodies(state_dir: Path | str | None = None) -> int:
    """How many fresh odds answers the archive in ``state_dir`` never stored, over its
    life: the queue was full (a burst outran the writer), the file was busy or broken, or
    a client's ``close()`` passed its deadline. Drops are added to the file with the
    next batch written, so the last few of a process that could not write are not in it.

    ``state_dir`` defaults to ``$QUOTAFLOW_HOME``, else ``~/.cache/quotaflow``.

    Raises:
        sqlite3.DatabaseError: the archive is damaged.
    """
    path = archive_path(state_dir)
    if not path.is_file():
        return 0
    with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
        if not db.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'odds_history_meta'"
        ).fetchone():
            return 0
        found = db.execute("SELECT value FROM odds_history_meta WHERE name = 'dropped'").fetchone()
    return int(found[0]) if found else 0


def history(event_id: str, state_dir: Path | str | None = None) -> list[HistoryRow]:
    """Every stored row of one event, ordered by bookmaker, market, outcome and time.

    ``state_dir`` defaults to ``$QUOTAFLOW_HOME``, else ``~/.cache/quotaflow``.

    Raises:
        sqlite3.DatabaseError: the archive is damaged.
    """
    found = _read(
        state_dir,
        f"SELECT {_COLUMNS} FROM odds_history WHERE event_id = ?"
        " ORDER BY bookmaker, market, outcome, fetched_at, rowid",
        (event_id,),
    )
    return [HistoryRow(*row) for row in found]


def archived_events(
    state_dir: Path | str | None = None,
    *,
    sport: str | None = None,
    since: float | None = None,
) -> list[ArchivedEvent]:
    """The events in the archive, by kick-off (then id).

    Args:
        state_dir: default ``$QUOTAFLOW_HOME``, else ``~/.cache/quotaflow``.
        sport: only this sport key (``basketball_nba``), or this group of keys
            (``basketball`` matches ``basketball_nba`` and ``basketball_ncaab``).
        since: only events whose odds were stored at or after this time (epoch seconds).

    Raises:
        sqlite3.DatabaseError: the archive is damaged.
    """
    where, parameters = [], []
    if sport is not None:
        where.append("(sport = ? OR substr(sport, 1, ?) = ?)")
        parameters += [sport, len(sport) + 1, f"{sport}_"]
    found = _read(
        state_dir,
        "SELECT event_id, sport, MAX(commence_time), MIN(fetched_at), MAX(fetched_at),"
        " COUNT(*), COUNT(DISTINCT bookmaker) FROM odds_history"
        f"{' WHERE ' + ' AND '.join(where) if where else ''}"
        " GROUP BY event_id, sport HAVING MAX(fetched_at) >= ?"
        " ORDER BY MAX(commence_time), event_id",
        [*parameters, -math.inf if since is None else since],
    )
    return [ArchivedEvent(*row) for row in found]


def movement(
    rows: Iterable[HistoryRow],
) -> dict[tuple[str, str, str], list[tuple[float, float, float | None]]]:
    """Per (bookmaker, market, outcome), the ``(fetched_at, price, point)`` at each change."""
    moves: dict[tuple[str, str, str], list[tuple[float, float, float | None]]] = {}
    for row in sorted(rows, key=lambda r: (r.bookmaker, r.market, r.outcome, r.fetched_at)):
        changes = moves.setdefault((row.bookmaker, row.market, row.outcome), [])
        if not changes or changes[-1][1:] != (row.price, row.point):
            changes.append((row.fetched_at, row.price, row.point))
    return moves
