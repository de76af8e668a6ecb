"""The built-in subscriber behind ``quotaflow status``: per profile, how requests were
answered, per UTC day and per hour by priority and by endpoint, kept in the shared
state (``_tallies``: the state file, or Redis). Strictly private.

It counts in memory and writes a batch from a short-lived thread at most every
FLUSH_SECONDS (or FLUSH_EVENTS events), and when the client closes, so a request never
waits for a write.
"""

from __future__ import annotations

import functools
import threading
from collections import Counter, deque
from datetime import UTC, datetime
from urllib.parse import urlsplit

from .. import events
from .._clock import Clock
from ._tallies import COLUMNS, Key, Tally

__all__ = ["COLUMNS", "MAX_ENDPOINTS", "OTHER", "Counters", "day_of", "endpoint_of", "hour_of"]

FLUSH_SECONDS = 5.0
FLUSH_EVENTS = 1000
# Distinct endpoints counted per profile (per process); the rest count as "other".
MAX_ENDPOINTS = 24
OTHER = "other"


@functools.lru_cache(maxsize=8)
def _day(number: int) -> str:
    return datetime.fromtimestamp(number * 86400, UTC).strftime("%Y-%m-%d")


@functools.lru_cache(maxsize=64)
def _hour(number: int) -> str:
    return datetime.fromtimestamp(number * 3600, UTC).strftime("%Y-%m-%dT%H")


def day_of(moment: float) -> str:
    """The UTC date of ``moment`` (formatted once per day, not once per event)."""
    return _day(int(moment // 86400))


def hour_of(moment: float) -> str:
    """The UTC hour of ``moment``, ``2026-11-29T13``."""
    return _hour(int(moment // 3600))


@functools.lru_cache(maxsize=1024)
def endpoint_of(resource: str) -> str:
    """The resource's path, without scheme, host and query."""
    return urlsplit(resource).path or "/"


_COLUMN = {
    events.Hit: ("hits", "saved"),
    events.Fetched: ("misses", "cost"),
    events.Revalidated: ("revalidated", "cost"),
    events.Stale: ("stale", ""),
    events.Refused: ("refused", ""),
}


class Counters:
    def __init__(self, tally: Tally, clock: Clock) -> None:
        self._tally = tally
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: Counter[tuple[Key, str]] = Counter()
        self._hits: deque[tuple[float, str, str, int, str]] = deque()
        self._notes: dict[str, dict[str, object]] = {}
        self._endpoints: dict[str, set[str]] = {}
        self._pending = 0
        self._flushed_at = clock.time()
        self._flushing = threading.Lock()

    def served_hit(
        self, profile: str, at: float, resource: str, saved: int, priority: str, waited: float
    ) -> None:
        """A cache hit, counted without building an event (the hot path's common case):
        one append (atomic, no lock), summed when the batch is written."""
        hits = self._hits
        hits.append((at, profile, resource, saved, priority))
        due = len(hits) >= FLUSH_EVENTS or at - self._flushed_at >= FLUSH_SECONDS
        if due and not self._flushing.locked():
            self._start_flush()

    def _start_flush(self) -> None:
        # Written off the request's thread (and off any event loop).
        threading.Thread(target=self._flush_once, name="quotaflow-counters", daemon=True).start()

    def _endpoint(self, profile: str, resource: str) -> str:
        path = endpoint_of(resource)
        seen = self._endpoints.setdefault(profile, set())
        if path not in seen:
            if len(seen) >= MAX_ENDPOINTS:
                return OTHER
            seen.add(path)
        return path

    def _count(
        self, at: float, profile: str, resource: str, priority: str, column: str, units: int
    ) -> None:
        """One request answered: its day, its hour, by priority and by endpoint."""
        counts, hour, day = self._counts, hour_of(at), (day_of(at), profile, "all", "")
        keys = (
            day,
            (hour, profile, "all", ""),
            (hour, profile, "priority", priority),
            (hour, profile, "endpoint", self._endpoint(profile, resource)),
        )
        unit = "saved" if column == "hits" else "spent"
        for key in keys:
            counts[(key, column)] += 1
            if key is not day:
                counts[(key, "requests")] += 1
            if units:
                counts[(key, unit)] += units

    def __call__(self, event: events.Event) -> None:
        if type(event) is events.Hit:
            self.served_hit(
                event.profile, event.at, event.resource, event.saved, event.priority, 0.0
            )
            return
        with self._lock:
            if isinstance(event, events.Served):
                column, field = next(
                    (v for kind, v in _COLUMN.items() if isinstance(event, kind)), ("", "")
                )
                if not column:
                    return
                units = int(getattr(event, field)) if field else 0
                self._count(event.at, event.profile, event.resource, event.priority, column, units)
            elif isinstance(event, events.UpstreamFailed):
                note = self._notes.setdefault(event.profile, {})
                note["last_error"], note["last_error_at"] = event.detail, event.at
            elif isinstance(event, events.CircuitChanged):
                note = self._notes.setdefault(event.profile, {})
                note["circuit"], note["circuit_at"] = event.state, event.at
            else:
                return
            self._pending += 1
            due = (
                self._pending >= FLUSH_EVENTS
                or event.at - self._flushed_at >= FLUSH_SECONDS
                or isinstance(event, events.CircuitChanged)
            )
        if due and not self._flushing.locked():
            self._start_flush()

    def _flush_once(self) -> None:
        if self._flushing.acquire(blocking=False):
            try:
                self.flush()
            finally:
                self._flushing.release()

    def flush(self) -> None:
        with self._lock:
            # Taken one by one: a hit appended meanwhile stays for the next batch.
            hits = self._hits
            for _ in range(len(hits)):
                at, profile, resource, saved, priority = hits.popleft()
                self._count(at, profile, resource, priority, "hits", saved)
            counts, self._counts = self._counts, Counter()
            notes, self._notes = self._notes, {}
            self._pending, self._flushed_at = 0, self._clock.time()
        if not counts and not notes:
            return
        rows: dict[Key, dict[str, int]] = {}
        for (key, column), value in counts.items():
            rows.setdefault(key, {})[column] = rows.get(key, {}).get(column, 0) + value
        # Counters are a convenience: a busy or broken store loses a batch, no more.
        self._tally.add(rows, notes)

    def close(self) -> None:
        with self._flushing:
            self.flush()
        self._tally.close()
