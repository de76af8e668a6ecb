"""The odds history archive (the "cold tier"): every fresh odds answer, kept per outcome.

:class:`OddsHistory` is a subscriber the plugin starts for every client: it keeps the
bodies of fresh ``theoddsapi`` odds answers in memory and writes them, batched, from a
short-lived thread (at most every FLUSH_SECONDS, and when the client closes) into
``odds_history.db`` in the client's state directory. A row is stored only when an
outcome's price or point differs from the latest row stored for it. :func:`history`
reads an event's rows back; :func:`movement` turns them into price changes;
:func:`archived_events` lists the events stored.
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
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

__all__ = [
    "DB_NAME",
    "ENV_DAYS",
    "ArchivedEvent",
    "HistoryRow",
    "OddsHistory",
    "archive_path",
    "archived_events",
    "history",
    "movement",
    "start",
]

logger = logging.getLogger("quotaflow")

DB_NAME = "odds_history.db"
ENV_DAYS = "QUOTAFLOW_ODDS_HISTORY_DAYS"
PROFILE_NAME = "theoddsapi"
FLUSH_SECONDS = 5.0
FLUSH_BODIES = 200
PRUNE_SECONDS = 3600.0
BUSY_TIMEOUT = 2.0
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
)


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


def parse(body: bytes, sport: str, fetched_at: float) -> list[HistoryRow]:
    """The rows of one odds body; raises ValueError (or TypeError) on a body of another shape."""
    data: Any = json.loads(body)
    if isinstance(data, dict) and "data" in data:  # historical wrapper
        data = data["data"]
    events = [data] if isinstance(data, dict) else data
    if not isinstance(events, list):
        raise ValueError("expected a list of events")
    rows = []
    for event in events:
        if not isinstance(event, dict) or not isinstance(event.get("id"), str):
            raise ValueError("expected events with an id")
        key = event.get("sport_key")
        event_sport = key if isinstance(key, str) else sport
        for bookmaker in event.get("bookmakers") or ():
            for market in bookmaker.get("markets") or ():
                updated = _text(market.get("last_update")) or _text(bookmaker.get("last_update"))
                for outcome in market.get("outcomes") or ():
                    price = _number(outcome.get("price"))
                    if price is None or not isinstance(outcome.get("name"), str):
                        continue
                    rows.append(
                        HistoryRow(
                            event["id"],
                            event_sport,
                            _text(event.get("commence_time")),
                            str(bookmaker["key"]),
                            str(market["key"]),
                            outcome["name"],
                            price,
                            _number(outcome.get("point")),
                            updated,
                            fetched_at,
                        )
                    )
    return rows


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


class OddsHistory:
    """Archives fresh odds answers of the ``theoddsapi`` profile into ``odds_history.db``.

    Args:
        state_dir: the client's state directory.
        retention_days: rows fetched longer ago are deleted (checked at most hourly).
        now: the time, for retention and batching.
    """

    def __init__(
        self,
        state_dir: Path | str,
        *,
        retention_days: float = 90,
        now: Callable[[], float] = time.time,
    ) -> None:
        if not retention_days > 0:
            raise ValueError(f"retention_days must be > 0, not {retention_days!r}")
        self.path = Path(state_dir) / DB_NAME
        self.retention = retention_days * 86400
        self._now = now
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._pending: list[tuple[str, float, bytes]] = []
        self._flushed_at = now()
        self._pruned_at = -math.inf

    def __call__(self, event: Any) -> None:
        # Called on the request's thread: match cheaply, parse and write later.
        if getattr(event, "profile", None) != PROFILE_NAME or not hasattr(event, "content"):
            return
        found = _ODDS_PATH.match(urlsplit(event.resource).path)
        if found is None or not 200 <= event.status < 300:
            return
        with self._lock:
            self._pending.append((found.group(1), event.at, event.content))
            due = len(self._pending) >= FLUSH_BODIES or event.at - self._flushed_at >= FLUSH_SECONDS
        if due and not self._flushing.locked():
            threading.Thread(target=self._flush_once, name="quotaflow-odds", daemon=True).start()

    def _flush_once(self) -> None:
        if self._flushing.acquire(blocking=False):
            try:
                self.flush()
            finally:
                self._flushing.release()

    def flush(self) -> None:
        """Write what is pending; a busy or broken file loses the batch with one warning."""
        with self._lock:
            pending, self._pending = self._pending, []
            now = self._flushed_at = self._now()
        rows: list[HistoryRow] = []
        for sport, fetched_at, body in pending:
            try:
                rows.extend(parse(body, sport, fetched_at))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                logger.debug("quotaflow: odds history skips an unreadable %s body: %s", sport, exc)
        rows = [row for row in rows if row.fetched_at >= now - self.retention]
        if not rows:
            return
        prune = now - self._pruned_at >= PRUNE_SECONDS
        try:
            if self._db is None:
                self._db = _connect(self.path)
            self._write(self._db, rows, now - self.retention if prune else None)
        except sqlite3.Error as exc:
            logger.warning(
                "quotaflow: odds history lost %d rows (%s): %s", len(rows), self.path, exc
            )
            return
        if prune:
            self._pruned_at = now

    @staticmethod
    def _write(db: sqlite3.Connection, rows: Sequence[HistoryRow], cutoff: float | None) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            if cutoff is not None:
                db.execute("DELETE FROM odds_history WHERE fetched_at < ?", (cutoff,))
            for row in rows:
                latest = db.execute(
                    "SELECT price, point FROM odds_history WHERE event_id = ? AND bookmaker = ?"
                    " AND market = ? AND outcome = ? ORDER BY fetched_at DESC, rowid DESC LIMIT 1",
                    (row.event_id, row.bookmaker, row.market, row.outcome),
                ).fetchone()
                if latest != (row.price, row.point):
                    db.execute(
                        f"INSERT INTO odds_history ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                        attrs.astuple(row),
                    )
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._flushing:
            self.flush()
            if self._db is not None:
                self._db.close()
                self._db = None


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
