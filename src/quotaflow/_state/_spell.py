"""``state.db``'s one-wait rule for ``cache.db``. Strictly private."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from pathlib import Path

from ._db import BUSY_SHORT, BUSY_SPELL

__all__ = ["Spell"]

logger = logging.getLogger("quotaflow")


class Spell:
    """``state.db``'s one-wait rule (``_db``) for ``cache.db``: once an operation has
    waited out another process's lock, the statements of the next ``BUSY_SPELL`` seconds
    wait ``BUSY_SHORT``. Reads go on (WAL: a writer's lock does not block them), so hits
    are still hits; a store that cannot get the lock leaves the answer unstored (hishel
    serves it uncached) instead of holding the request."""

    def __init__(self, connection: sqlite3.Connection, path: Path, timeout: float) -> None:
        self._connection = connection
        self._timeout = timeout  # BUSY_TIMEOUT, as the connection was opened with
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
            self._wait(self._timeout)
        return now

    def end(self, started: float) -> None:
        if not self._ours:
            self._ours = True
            self._wait(BUSY_SHORT if self._until else self._timeout)
        if self._until or time.monotonic() - started < self._timeout * 0.9:
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
