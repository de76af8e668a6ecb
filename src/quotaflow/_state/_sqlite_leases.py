"""Single-flight leases in the state file, each naming the process that holds it: a
holder that died lets go at once. A leader's lease is taken in its reservation's
transaction and landed in its settle's (``_leasing``). Strictly private."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid

from ._backend import Leases, LeaseStep
from ._db import LocalStateError, StateDB
from ._gate import JUMP_MS

__all__ = ["LONGEST_LEASE", "SqliteLeases", "acquire_in", "land_in"]

# No lease is taken for longer (seconds): single flight's last 30 s.
LONGEST_LEASE = 300.0


def _holds(expires: float, now: float, ttl: float) -> bool:
    """Whether a lease expiring at ``expires`` still runs at ``now``: one that runs
    longer than it could have been taken for (more than a clock step's tolerance, see
    ``_window.JUMP_MS``: another process may have read its clock a little later) was
    taken before the clock stepped back, and has run its course."""
    return now < expires <= now + ttl + JUMP_MS / 1000


def _alive(token: str) -> bool:
    """Whether the process that took a lease (its pid leads the token) still runs. The
    processes sharing a SQLite state share a machine, so a leader that died (SIGKILL)
    is seen at once, not when its lease expires. A token of another form: alive."""
    pid, _, _ = token.partition("-")
    if not pid.isdigit() or int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: it exists
        return True
    return True


def acquire_in(cur: sqlite3.Cursor, step: LeaseStep) -> bool:
    """Take a lease in a transaction of the caller's (a reservation's: ``_leasing``);
    False if another process holds it. Taking one its token holds already renews it."""
    cur.execute("SELECT expires, token FROM leases WHERE key = ?", (step.key,))
    row = cur.fetchone()
    other = row is not None and row[1] != step.token
    if other and _holds(row[0], step.now, step.seconds) and _alive(row[1]):
        return False
    cur.execute(
        "INSERT OR REPLACE INTO leases (key, token, expires) VALUES (?, ?, ?)",
        (step.key, step.token, step.now + step.seconds),
    )
    return True


def land_in(cur: sqlite3.Cursor, step: LeaseStep) -> None:
    """In a transaction of the caller's (a settle's): the lease lapses ``step.seconds``
    from now at the latest, with no release of its own."""
    cur.execute(
        "UPDATE leases SET expires = MIN(expires, ?) WHERE key = ? AND token = ?",
        (step.now + step.seconds, step.key, step.token),
    )


class SqliteLeases(Leases):
    """Leases in the state file, each naming the process that holds it."""

    lands = True

    def __init__(self, db: StateDB) -> None:
        self._db = db

    def token(self) -> str:
        return f"{os.getpid()}-{uuid.uuid4().hex}"

    def acquire(self, key: str, ttl: float, now: float, token: str | None = None) -> str | None:
        token = token or self.token()
        try:
            with self._db.transaction() as cur:
                taken = acquire_in(cur, LeaseStep(key, token, ttl, now, take=True))
                return token if taken else None
        except LocalStateError:
            return token  # fail open: lead without a lease

    def joins(self, db: StateDB) -> bool:
        """Whether the lease can be taken in a transaction of ``db``'s."""
        return db is self._db

    def release(self, key: str, token: str) -> None:
        with contextlib.suppress(LocalStateError), self._db.transaction() as cur:
            cur.execute("DELETE FROM leases WHERE key = ? AND token = ?", (key, token))

    def held(self, key: str, now: float) -> bool:
        try:
            with self._db.transaction() as cur:
                cur.execute("SELECT expires, token FROM leases WHERE key = ?", (key,))
                row = cur.fetchone()
        except LocalStateError:
            return False
        return row is not None and _holds(row[0], now, LONGEST_LEASE) and _alive(row[1])
