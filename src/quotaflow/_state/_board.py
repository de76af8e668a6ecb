"""Priority across processes: the requests waiting for a profile's short window, by
priority, in the shared state. Strictly private.

A process's wait room (``_waitroom``) orders its own waiters. To order the waiters of
every process on the state, a waiter that others should let go first (any priority
above LOW) is put on the board until its deadline (its max wait); a request of a
lower priority defers while one of a higher priority from another process is on the
board, never past its own max wait. A process that dies leaves entries that expire at
their deadline.

- SQLite: the ``waiting`` table of the state file.
- Redis: ``{prefix}:waiting:{profile}``, a sorted set of ``rank:token`` by deadline.

Errors leave the order to each process (the board is a courtesy, not a lock).
"""

from __future__ import annotations

import abc
import contextlib
import itertools
import sqlite3
import threading
import uuid
from typing import Any

from ._db import LocalStateError, StateDB

__all__ = ["LOWEST", "REFRESH", "Board", "RedisBoard", "SqliteBoard"]

# The rank of LOW (CRITICAL is 0): nobody defers to a LOW waiter, so none is put up.
LOWEST = 3

# How long a read of the board is reused (seconds): at most one read per profile and
# process this often, however many requests are admitted.
REFRESH = 0.05


class Board(abc.ABC):
    def __init__(self) -> None:
        self._me = uuid.uuid4().hex  # this handle's waiters are ordered by its room
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._seen: list[tuple[str, int]] = []
        self._seen_at = float("-inf")

    def enter(self, rank: int, until: float, now: float) -> str:
        """Put a waiter on the board until ``until``; returns its token."""
        token = f"{self._me}.{next(self._seq)}"
        with contextlib.suppress(Exception):
            self._enter(token, rank, until, now)
        return token

    def leave(self, token: str) -> None:
        with contextlib.suppress(Exception):
            self._leave(token)
        self._seen_at = float("-inf")

    def ahead(self, rank: int, now: float) -> bool:
        """Whether another process has a waiter of a higher priority (lower rank)."""
        with self._lock:
            if not self._seen_at <= now < self._seen_at + REFRESH:
                try:
                    self._seen = self._waiting(now)
                except Exception:
                    self._seen = []
                self._seen_at = now
            seen = self._seen
        return any(r < rank and not token.startswith(self._me) for token, r in seen)

    @abc.abstractmethod
    def _enter(self, token: str, rank: int, until: float, now: float) -> None: ...

    @abc.abstractmethod
    def _leave(self, token: str) -> None: ...

    @abc.abstractmethod
    def _waiting(self, now: float) -> list[tuple[str, int]]: ...


class SqliteBoard(Board):
    def __init__(self, db: StateDB, profile: str) -> None:
        super().__init__()
        self._db, self._profile = db, profile

    def _enter(self, token: str, rank: int, until: float, now: float) -> None:
        with self._db.transaction() as cur:
            cur.execute("DELETE FROM waiting WHERE until < ?", (now,))
            cur.execute(
                "INSERT INTO waiting (token, profile, rank, until) VALUES (?, ?, ?, ?)",
                (token, self._profile, rank, until),
            )

    def _leave(self, token: str) -> None:
        with self._db.transaction() as cur:
            cur.execute("DELETE FROM waiting WHERE token = ?", (token,))

    def _waiting(self, now: float) -> list[tuple[str, int]]:
        try:
            with self._db.transaction() as cur:
                return self._rows(cur, now)
        except LocalStateError:
            return []

    def _rows(self, cur: sqlite3.Cursor, now: float) -> list[tuple[str, int]]:
        rows = cur.execute(
            "SELECT token, rank FROM waiting WHERE profile = ? AND until >= ?",
            (self._profile, now),
        ).fetchall()
        return [(str(token), int(rank)) for token, rank in rows]

    def joins(self, db: StateDB) -> bool:
        """Whether the board can be read in a transaction of ``db``'s."""
        return db is self._db

    def ahead_in(self, cur: sqlite3.Cursor, rank: int, now: float) -> bool:
        """:meth:`ahead` in a transaction of the caller's (a reservation's: no round
        trip of its own). Without the board's lock: a thread in :meth:`ahead` may hold
        it waiting for the transaction's (a stale read is a courtesy's worth)."""
        if not self._seen_at <= now < self._seen_at + REFRESH:
            self._seen, self._seen_at = self._rows(cur, now), now
        return any(r < rank and not token.startswith(self._me) for token, r in self._seen)


class RedisBoard(Board):
    def __init__(self, client: Any, prefix: str, profile: str) -> None:
        super().__init__()
        self._client, self._key = client, f"{prefix}:waiting:{profile}"

    def _enter(self, token: str, rank: int, until: float, now: float) -> None:
        pipe = self._client.pipeline(transaction=False)
        pipe.zremrangebyscore(self._key, "-inf", now)
        pipe.zadd(self._key, {f"{rank}:{token}": until})
        pipe.expire(self._key, 86400)  # a backstop: entries go at their deadline
        pipe.execute()

    def _leave(self, token: str) -> None:
        # The member's rank is not known here: every rank is tried (four at most).
        self._client.zrem(self._key, *(f"{rank}:{token}" for rank in range(4)))

    def _waiting(self, now: float) -> list[tuple[str, int]]:
        found = self._client.zrangebyscore(self._key, now, "+inf")
        members = (m.decode() if isinstance(m, bytes) else str(m) for m in found)
        return [(token, int(rank)) for rank, _, token in (m.partition(":") for m in members)]
