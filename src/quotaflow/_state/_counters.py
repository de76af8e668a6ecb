"""The built-in subscriber behind ``quotaflow status``: per profile and day, how requests
were answered, kept in the state file. Strictly private.

It counts in memory and writes a batch from a short-lived thread at most every
FLUSH_SECONDS (or FLUSH_EVENTS events), and when the client closes, so a request never
waits for a write.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections import Counter, deque
from datetime import UTC, datetime

from .. import events
from .._clock import Clock
from ._db import LocalStateError, StateDB

FLUSH_SECONDS = 5.0
FLUSH_EVENTS = 1000
COLUMNS = ("hits", "misses", "revalidated", "stale", "refused", "saved", "spent")


@functools.lru_cache(maxsize=8)
def _day(number: int) -> str:
    return datetime.fromtimestamp(number * 86400, UTC).strftime("%Y-%m-%d")


def day_of(moment: float) -> str:
    """The UTC date of ``moment`` (formatted once per day, not once per event)."""
    return _day(int(moment // 86400))


class Counters:
    def __init__(self, db: StateDB, clock: Clock, *, own: bool = False) -> None:
        self._db = db
        self._own = own
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._hits: deque[tuple[float, str, int]] = deque()
        self._notes: dict[str, dict[str, object]] = {}
        self._pending = 0
        self._flushed_at = clock.time()
        self._flushing = threading.Lock()

    def hit(self, profile: str, at: float, saved: int) -> None:
        """A cache hit, counted without building an event (the hot path's common case):
        one append (atomic, no lock), summed when the batch is written."""
        hits = self._hits
        hits.append((at, profile, saved))
        due = len(hits) >= FLUSH_EVENTS or at - self._flushed_at >= FLUSH_SECONDS
        if due and not self._flushing.locked():
            threading.Thread(
                target=self._flush_once, name="quotaflow-counters", daemon=True
            ).start()

    def __call__(self, event: events.Event) -> None:
        if type(event) is events.Hit:
            self.hit(event.profile, event.at, event.saved)
            return
        day = day_of(event.at)
        with self._lock:
            counts, key = self._counts, (day, event.profile)
            if isinstance(event, events.Hit):
                counts[(*key, "hits")] += 1
                counts[(*key, "saved")] += event.saved
            elif isinstance(event, events.Fetched):
                counts[(*key, "misses")] += 1
                counts[(*key, "spent")] += event.cost
            elif isinstance(event, events.Revalidated):
                counts[(*key, "revalidated")] += 1
                counts[(*key, "spent")] += event.cost
            elif isinstance(event, events.Stale):
                counts[(*key, "stale")] += 1
            elif isinstance(event, events.Refused):
                counts[(*key, "refused")] += 1
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
            # Written off the request's thread (and off any event loop).
            threading.Thread(
                target=self._flush_once, name="quotaflow-counters", daemon=True
            ).start()

    def _flush_once(self) -> None:
        if self._flushing.acquire(blocking=False):
            try:
                self.flush()
            finally:
                self._flushing.release()

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, Counter()
            # Taken one by one: a hit appended meanwhile stays for the next batch.
            hits = self._hits
            for _ in range(len(hits)):
                at, profile, saved = hits.popleft()
                key = (day_of(at), profile)
                counts[(*key, "hits")] += 1
                counts[(*key, "saved")] += saved
            notes, self._notes = self._notes, {}
            self._pending, self._flushed_at = 0, self._clock.time()
        if not counts and not notes:
            return
        rows: dict[tuple[str, str], dict[str, int]] = {}
        for (day, profile, column), value in counts.items():
            rows.setdefault((day, profile), dict.fromkeys(COLUMNS, 0))[column] += value
        # Counters are a convenience: a busy or broken state file loses a batch, no more.
        with contextlib.suppress(LocalStateError), self._db.transaction() as cur:
            cur.executemany(
                "INSERT INTO counters (day, profile, hits, misses, revalidated, stale, refused,"
                " saved, spent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (day, profile) DO UPDATE SET"
                + ",".join(f" {c} = {c} + excluded.{c}" for c in COLUMNS),
                [
                    (day, profile, *(row[c] for c in COLUMNS))
                    for (day, profile), row in rows.items()
                ],
            )
            for profile, note in notes.items():
                cur.execute(
                    "INSERT INTO profile_status (profile) VALUES (?) ON CONFLICT DO NOTHING",
                    (profile,),
                )
                for column, noted in note.items():
                    cur.execute(
                        f"UPDATE profile_status SET {column} = ? WHERE profile = ?",
                        (noted, profile),
                    )

    def close(self) -> None:
        with self._flushing:
            self.flush()
        if self._own:
            self._db.close()
