"""Processes that write one SQLite file take turns on a lock beside it. Strictly private.

SQLite lets one writer at a time into a file; the others wait in its busy handler,
which sleeps between tries (1 ms, then 2, 5, 10... ms): with several processes missing
at once, most transactions would sleep a millisecond or more for a lock held a few
dozen microseconds. Each of quotaflow's write transactions first takes an advisory lock
on ``<file>.writers`` (``flock``), looking again within 50 µs, then at most 1 ms apart
(a blocking ``flock`` could not give up on a frozen holder). It only orders quotaflow's
own writers: SQLite's lock still guards the file
(a process that does not take the turn is waited for by SQLite as before), and a holder
that does not let go in ``wait`` seconds (a frozen process) is not waited for longer:
the transaction then goes to SQLite's own wait. Where ``fcntl`` is missing (Windows),
every turn is free.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["Turns"]

# The first look again after a busy turn, and the longest between two (seconds): a
# turn is held for a transaction, tens of microseconds.
_FIRST = 0.00005
_LONGEST = 0.001


class Turns:
    """Writers of one file, in turn. One per connection, used under its thread lock."""

    def __init__(self, path: Path) -> None:
        self._fd: int | None = None
        if fcntl is None:
            return
        # Private, and never through a symbolic link (as the state files themselves).
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        with contextlib.suppress(OSError):  # unwritable: SQLite's own wait, as before
            self._fd = os.open(f"{path}.writers", flags, 0o600)

    @contextlib.contextmanager
    def turn(self, wait: float) -> Iterator[None]:
        """Hold the turn for a write transaction (waiting at most ``wait`` seconds)."""
        fd = self._fd
        if fd is None or not self._take(fd, wait):
            yield
            return
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)

    @staticmethod
    def _take(fd: int, wait: float) -> bool:
        pause, deadline = _FIRST, 0.0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            except OSError:
                return False
            now = time.monotonic()
            if not deadline:
                deadline = now + wait
            elif now >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, _LONGEST)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
