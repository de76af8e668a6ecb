"""Reaching Redis within a deadline, and what to do when it cannot be reached
(``redis_fail``; see ``_redis``). Strictly private."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff

from ..exceptions import StateUnavailable
from ._sqlite import SqliteBackend

T = TypeVar("T")
logger = logging.getLogger("quotaflow")

# "Redis is not there", as opposed to a refused command or a bug.
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)
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

    def run(self, remote: Callable[[], T], local: Callable[[SqliteBackend], T]) -> T:
        if time.monotonic() >= self._retry_at:
            try:
                self.trips += 1  # one command or script (a transaction counts its own)
                return remote()
            except UNREACHABLE as exc:
                self._error, self._retry_at = exc, time.monotonic() + RETRY_AFTER
        if self.fail == "closed":
            raise StateUnavailable(
                f"redis_url {self.url}: shared state unavailable ({self._error})"
            ) from self._error
        with self._lock:
            if self.local is None:
                logger.warning("redis_url %s: %s; using local state", self.url, self._error)
                self.local = SqliteBackend(self.directory, journal=False)
        return local(self.local)
