"""The state file: one SQLite connection per process, shared by its threads.

Several processes share the file safely: every read-modify-write runs in a
``BEGIN IMMEDIATE`` transaction (WAL mode, so readers never block). The tables are
``_schema``'s. Strictly private.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ..exceptions import ConfigError
from ._recovery import check, is_corruption, set_aside
from ._schema import SCHEMA

logger = logging.getLogger("quotaflow")

# How long a transaction waits for another process's lock before giving up (seconds).
BUSY_TIMEOUT = 2.0
# Once one has given up, the transactions of the next BUSY_SPELL seconds wait only this
# long: a request makes several, and a file held for long must cost it one wait, not
# one per transaction (each then carries on without the state, as after the first).
BUSY_SHORT = 0.05
BUSY_SPELL = 5.0
# Busy waits a new process spends at most setting up the file (see StateDB._open).
OPEN_TRIES = 3


class LocalStateError(Exception):
    """The state file could not serve this operation (busy, unwritable, corrupt)."""


class StateDB:
    """One SQLite connection shared by the threads of a process.

    A corrupt file is moved aside and rebuilt (see ``_recovery``); any other failure
    surfaces as LocalStateError, which each user turns into "carry on without it".
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._warned = False
        self._busy_until = 0.0  # monotonic: until then, waits are BUSY_SHORT
        # Transactions begun (each one round trip to the file and its lock): benchmarks
        # read it through ``Backend.round_trips``.
        self.round_trips = 0
        existed = path.exists()
        check(path)  # a corrupt file is moved aside
        lost = existed and not path.exists()
        try:
            self._connection = self._open()
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise ConfigError(f"state_dir: cannot use state file {path}: {exc}") from exc
            set_aside(path, exc)
            self._connection = self._open()
            lost = True
        if lost:
            self._mark_lost()

    def _mark_lost(self) -> None:
        """The file was rebuilt: the ledger it held is lost, so what is left of a quota
        is unknown until the API says (``Books.lost``), never the whole plan again."""
        with contextlib.suppress(sqlite3.Error):
            self._connection.execute("INSERT INTO lost (at) VALUES (?)", (time.time(),))

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT
        )
        try:
            for attempt in range(OPEN_TRIES):
                try:
                    connection.execute("PRAGMA journal_mode=WAL")
                    connection.execute("PRAGMA synchronous=NORMAL")
                    connection.executescript(SCHEMA)
                    break
                except sqlite3.OperationalError as exc:
                    # Processes making a new file at once queue for it (switching to
                    # WAL, creating tables): a busy machine may take them past one wait.
                    if "locked" not in str(exc) or attempt == OPEN_TRIES - 1:
                        raise
        except BaseException:
            connection.close()
            raise
        return connection

    def _wait(self, seconds: float) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._connection.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")

    @property
    def busy_timeout(self) -> float:
        """The wait for another process's lock now, in seconds (for tests and status)."""
        with self._lock:
            (value,) = self._connection.execute("PRAGMA busy_timeout").fetchone()
        return float(value) / 1000

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            self.round_trips += 1
            if self._busy_until and time.monotonic() >= self._busy_until:
                self._busy_until = 0.0
                self._wait(BUSY_TIMEOUT)
            try:
                cursor = self._connection.cursor()
                cursor.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._failed(exc) from exc
            try:
                yield cursor
                cursor.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    cursor.execute("ROLLBACK")
                raise self._failed(exc) from exc
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    cursor.execute("ROLLBACK")
                raise

    def _failed(self, exc: sqlite3.Error) -> LocalStateError:
        if is_corruption(exc):
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
            try:
                set_aside(self.path, exc)
                self._connection = self._open()
                self._mark_lost()
            except (OSError, sqlite3.Error):
                logger.warning("quotaflow: could not rebuild %s", self.path, exc_info=True)
        else:
            if "locked" in str(exc) or "busy" in str(exc):
                self._busy_until = time.monotonic() + BUSY_SPELL
                self._wait(BUSY_SHORT)
            if self._warned:
                return LocalStateError(str(exc))
            self._warned = True
            logger.warning(
                "quotaflow: state file %s unusable (%s); carrying on without it", self.path, exc
            )
        return LocalStateError(str(exc))

    def close(self) -> None:
        with self._lock:
            self._connection.close()
