"""Reaching Redis within a deadline, and what to do when it cannot be reached
(``redis_fail``; see ``_redis``). Strictly private."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff

from ..exceptions import StateUnavailable
from ._sqlite import SqliteBackend

T = TypeVar("T")
logger = logging.getLogger("quotaflow")

# "Redis is not there", as opposed to a refused command or a bug. A socket error that
# redis-py did not wrap (a bare ConnectionRefusedError during a restart) is one too.
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OSError)
RETRY_AFTER = 5.0  # seconds a failed Redis is left alone
CONNECT_TIMEOUT = 2.0
# Every command we send is O(1) or a short script; 0.5 s is well above a healthy
# round trip. A timed-out command is not sent again: it may have run (a ledger script
# would count twice), and a frozen server would cost a timeout per try.
SOCKET_TIMEOUT = 0.5
_BACKOFF = ExponentialWithJitterBackoff(cap=0.5, base=0.01)


def options(retry: type[Any]) -> dict[str, Any]:
    return {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": SOCKET_TIMEOUT,
        "retry": retry(_BACKOFF, 2, supported_errors=(redis.ConnectionError,)),
    }


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is not None:
        user, _, host = parts.netloc.rpartition("@")
        parts = parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}")
    return re.sub(r"(?i)(password=)[^&#]*", r"\1***", parts.geturl())


class Guard:
    """Runs an operation on Redis, else fails closed or carries on locally."""

    def __init__(self, url: str, fail: str, directory: Path) -> None:
        self.url, self.fail, self.directory = redact(url), fail, directory
        self.local: SqliteBackend | None = None
        self._retry_at = 0.0
        self._error: Exception = redis.ConnectionError("unreachable")
        self._lock = threading.Lock()
        self.trips = 0  # round trips to Redis (RedisBackend.round_trips)
        self.losses = 0  # outages seen: an operation compares it before and after

    def reachable(self) -> bool:
        """False for RETRY_AFTER seconds after Redis was found unreachable."""
        return time.monotonic() >= self._retry_at

    def lost(self, exc: Exception) -> None:
        self._error, self._retry_at = exc, time.monotonic() + RETRY_AFTER
        self.losses += 1

    def refusal(self) -> StateUnavailable:
        """What ``redis_fail="closed"`` raises (``from`` the error that tripped it)."""
        error = StateUnavailable(f"redis_url {self.url}: shared state unavailable ({self._error})")
        error.__cause__ = self._error
        return error

    def _lost_command(self, exc: Exception) -> None:
        self.lost(exc)
        if not isinstance(exc, redis.RedisError):
            raise redis.ConnectionError(f"{type(exc).__name__}: {exc}") from exc

    def _skipped(self) -> redis.ConnectionError:
        return redis.ConnectionError(f"not tried for {RETRY_AFTER:g} s after: {self._error}")

    def call(self, command: Callable[[], T]) -> T:
        """One command of a guarded client (``_redis_client``): not sent while Redis is
        left alone; an outage noted here; always a ``RedisError``, never a bare
        ``OSError`` (hishel's storage turns a ``RedisError`` into a miss)."""
        if not self.reachable():
            raise self._skipped()
        try:
            return command()
        except UNREACHABLE as exc:
            self._lost_command(exc)
            raise

    async def acall(self, command: Callable[[], Awaitable[T]]) -> T:
        """:meth:`call` for an async client."""
        if not self.reachable():
            raise self._skipped()
        try:
            return await command()
        except UNREACHABLE as exc:
            self._lost_command(exc)
            raise

    def run(self, remote: Callable[[], T], local: Callable[[SqliteBackend], T]) -> T:
        if self.reachable():
            try:
                self.trips += 1  # one command or script (a transaction counts its own)
                return remote()
            except UNREACHABLE as exc:
                self.lost(exc)
        if self.fail == "closed":
            raise self.refusal()
        with self._lock:
            if self.local is None:
                logger.warning("redis_url %s: %s; using local state", self.url, self._error)
                self.local = SqliteBackend(self.directory, journal=False)
        return local(self.local)
