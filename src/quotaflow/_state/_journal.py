"""The journal: upstream calls the ledger could not record, kept until it can.

A call that went upstream while the shared state could not be written (the state file
locked past its busy wait, Redis unreachable under ``redis_fail="open"``) is appended to
``journal`` in the state directory (0600, one JSON object a line, under an exclusive
``flock``, so the processes on the directory share it). Once the ledger answers again,
each entry is applied to it in a transaction that also records the entry's id
(``replayed`` in SQLite, ``{prefix}:replayed:{id}`` in Redis), so a replay that dies
half-way, or two processes replaying at once, count each call exactly once. Entries of
a quota period that has ended are dropped. Strictly private.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import attrs

from .._profiles import QuotaReading

logger = logging.getLogger("quotaflow")

# How long the store keeps the id of an entry it recorded (seconds): longer than any
# quota period, past which an entry is dropped unreplayed.
REPLAYED_KEEP = 40 * 86400
# How often a process looks for entries other processes wrote (seconds).
LOOK_EVERY = 5.0
# Entries kept at most (a journal is for an outage, not a second ledger): past this, the
# oldest go, with a warning; the ledger may then count less than was spent.
MAX_ENTRIES = 100_000


@attrs.frozen
class Entry:
    """One upstream call the ledger did not record."""

    id: str
    profile: str  # the profile's name, for its rules
    account: str  # the ledger row (see ``_books.account_name``)
    ticket: str  # the reservation it settles ("" if none was stored)
    spent: int
    reading: QuotaReading
    at: float
    exhausted: bool = False

    def line(self) -> str:
        fields = attrs.asdict(self, recurse=False)
        fields["reading"] = attrs.asdict(self.reading)
        return json.dumps(fields, separators=(",", ":")) + "\n"


def _entry(line: str) -> Entry | None:
    try:
        fields: dict[str, Any] = json.loads(line)
        fields["reading"] = QuotaReading(**fields["reading"])
        return Entry(**fields)
    except (ValueError, TypeError, KeyError):
        return None  # a torn or foreign line: nothing to count


class Journal:
    """The journal file of one state directory."""

    def __init__(self, path: Path, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._monotonic = monotonic
        self._look_at = 0.0  # monotonic: when to look for others' entries next

    def new(
        self,
        profile: str,
        account: str,
        ticket: str,
        spent: int,
        reading: QuotaReading,
        at: float,
        *,
        exhausted: bool = False,
    ) -> Entry:
        return Entry(uuid.uuid4().hex, profile, account, ticket, spent, reading, at, exhausted)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[TextIO]:
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
        fd = os.open(self.path, flags, 0o600)
        with os.fdopen(fd, "r+", encoding="utf-8") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            yield file

    def write(self, entry: Entry) -> None:
        """Append ``entry``. Never raises: a journal that cannot be written loses the
        entry with a warning (the answer is already paid for and goes to the caller)."""
        try:
            with self._locked() as file:
                file.write(entry.line())
                file.flush()
                os.fsync(file.fileno())
        except OSError as exc:
            logger.warning("quotaflow: cannot write the journal %s: %s", self.path, exc)
            return
        self._look_at = 0.0

    def due(self) -> bool:
        """Whether there may be entries to replay (this process wrote one, or it is
        time to look for others')."""
        now = self._monotonic()
        if now < self._look_at:
            return False
        self._look_at = now + LOOK_EVERY
        try:
            return self.path.stat().st_size > 0
        except OSError:
            return False

    def replay(self, apply: Callable[[Entry], bool]) -> int:
        """Offer each entry to ``apply`` (True: counted, or never to be; False: keep it
        for later) and keep only those it kept; return how many it took."""
        try:
            with self._locked() as file:
                file.seek(0)
                entries = [e for line in file if (e := _entry(line)) is not None]
                kept = [entry for entry in entries if not apply(entry)]
                if len(kept) > MAX_ENTRIES:
                    logger.warning("quotaflow: journal %s over %d entries", self.path, MAX_ENTRIES)
                    kept = kept[-MAX_ENTRIES:]
                file.seek(0)
                file.truncate()
                file.writelines(entry.line() for entry in kept)
                file.flush()
                os.fsync(file.fileno())
        except OSError as exc:
            logger.warning("quotaflow: cannot replay the journal %s: %s", self.path, exc)
            return 0
        return len(entries) - len(kept)
