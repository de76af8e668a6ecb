"""The state object a client's stack is built on, made from its Settings. Strictly private.

``Runtime(settings)`` opens the state (SQLite or Redis backend, counters, windows,
breakers, the limiter, the hot tier, the single-flight gate, the cold store) and holds
the decision objects the layers share (policy, router). Both stacks (sync and async),
``plan`` and ``explain`` read a client's Runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from . import events
from ._clock import Clock
from ._cold import COLD_FILE, ColdStore
from ._credentials import Fingerprints
from ._flight import SingleFlight
from ._hot import HotTier
from ._known import known_for
from ._plugins import Registry
from ._secrets import redact_logs
from ._settings import _FALLBACKS, Settings, remove_fallback
from ._state._backend import STATE_FILE, Backend
from ._state._board import Board, SqliteBoard
from ._state._breaker import Breaker
from ._state._counters import Counters
from ._state._db import StateDB
from ._state._shared import open_shared
from ._state._short import ShortWindow
from ._state._sqlite import SqliteBackend
from ._state._sqlite_cold import SqliteColdStore
from ._state._tallies import SqliteTally
from ._transports._core import Policy
from ._transports._limiter import Limiter
from ._transports._route import Router
from .events import Emitter
from .exceptions import ConfigError

__all__ = ["RETENTION", "Runtime", "open_backend"]

R = TypeVar("R")

# Every entry quotaflow stores gets a TTL of its own (_retention.py). This is Redis's
# default_ttl, a backstop for anything stored without one (hishel's own is 3600 s, shorter
# than many a max_stale): the longest max_stale plus the longest freshness a shipped rule
# assigns (historical odds, 30 days).
RETENTION = 31 * 86400.0


def open_backend(settings: Settings) -> Backend:
    """The shared state the settings name: Redis when ``redis_url`` is set, else SQLite
    files in the state directory. ``quotaflow status`` and the dashboard read it too.

    One per state directory (or Redis URL and prefix) within a process, shared by the
    clients on it (``_state/_shared.py``): let it go with ``release``, never ``close``.
    """
    directory = settings.directory.resolve()
    if not settings.redis_url:
        return open_shared(("sqlite", directory), lambda: SqliteBackend(settings.directory))
    # Entries must outlive their freshness plus the longest fallback window.
    profiles = settings.registry.profiles
    retention = max((p.max_stale for p in profiles), default=0.0) + RETENTION
    key = (settings.redis_url, settings.redis_prefix, settings.redis_fail, directory, retention)
    url = settings.redis_url
    return open_shared(("redis", *key), lambda: _redis_backend(settings, url, retention))


def _redis_backend(settings: Settings, url: str, retention: float) -> Backend:
    try:
        from ._state._redis import redis_backend
    except ImportError as exc:  # the extra is not installed
        raise ConfigError(
            f"redis_url: needs the redis extra: pip install 'quotaflow[redis]' ({exc})"
        ) from exc
    return redis_backend(
        url,
        prefix=settings.redis_prefix,
        fail=settings.redis_fail,
        directory=settings.directory,
        retention=retention,
    )


class Runtime:
    """One client's state and shared decision objects, built from its settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.backend = open_backend(settings)
        # The status counters live in the shared state: Redis's, or the state file.
        db = self.backend.db if isinstance(self.backend, SqliteBackend) else None
        directory = settings.directory
        tally = self.backend.tally() or SqliteTally(
            db or StateDB(directory / STATE_FILE), own=db is None
        )
        self.counters = Counters(tally, self.clock)
        self.emit = Emitter([self.counters, *settings.subscribers], builtin=1)
        self.limiter = self._limiter()
        if directory in _FALLBACKS:
            # Last, once the state files in it are closed.
            self.limiter.on_close.append(remove_fallback(directory))
        self.policy = Policy(self.clock, settings.max_body, settings.rules)
        self.router = Router(self.registry, Fingerprints(self.backend.fingerprint_key()))
        self.hot = HotTier(settings.hot_entries, settings.hot_bytes, settings.max_body)
        self.flights = SingleFlight(self.backend.leases, self.clock)
        # Storage keys known to hold nothing, shared with the backend (``_known.py``).
        self.known = known_for(self.backend)
        self.cold = self._cold()
        self.storage: Any = None  # the hishel storage of the stack built on this
        redact_logs(self.registry.secret_params)

    @property
    def clock(self) -> Clock:
        return self.settings.clock

    @property
    def registry(self) -> Registry:
        return self.settings.registry

    @property
    def windows(self) -> dict[str, ShortWindow]:
        return self.limiter.windows

    def _board(self, profile: str) -> Board | None:
        backend = self.backend
        if isinstance(backend, SqliteBackend):
            return SqliteBoard(backend.db, profile)
        return backend.board(profile)

    def _limiter(self) -> Limiter:
        settings = self.settings
        windows = {
            profile.name: ShortWindow(profile, self.backend.window_store(f"rate:{profile.name}"))
            for profile in self.registry.profiles
        }
        for name, window in windows.items():
            window.board = self._board(name) if window.rates else None
        breakers = {
            profile.name: Breaker(
                profile.name,
                profile.breaker_threshold,
                profile.breaker_cooldown,
                self._circuit_changed(profile.name),
            )
            for profile in self.registry.profiles
            if profile.breaker_threshold > 0
        }
        return Limiter(
            self.backend,
            self.clock,
            windows,
            breakers,
            self.emit,
            settings.rate_limit,
            retries=settings.retries,
            max_body=settings.max_body,
            alert_command=settings.alert_command,
        )

    def _cold(self) -> ColdStore | None:
        """Answers that never change: only for profiles that mark some (a file of its own)."""
        if not any(profile.immutable is not None for profile in self.registry.profiles):
            return None
        secrets = self.registry.secret_params
        cold_bytes = self.settings.cold_bytes
        return self.backend.cold_store(cold_bytes, secrets) or SqliteColdStore(
            self.settings.directory / COLD_FILE, cold_bytes, secrets
        )

    def _circuit_changed(self, profile: str) -> Callable[[str], None]:
        def changed(state: str) -> None:
            if self.emit.active:
                self.emit(events.CircuitChanged(profile, self.clock.time(), state))

        return changed

    def wait_rooms(self, kind: Callable[[ShortWindow, Clock], R]) -> dict[str, R]:
        """One wait room of ``kind`` per profile's short window."""
        return {name: kind(window, self.clock) for name, window in self.windows.items()}
