"""State handles shared within a process. Strictly private.

Clients on one state directory (or one Redis URL and prefix) in one process share one
backend: one SQLite connection to ``state.db`` (or one Redis connection pool), its
journal and its fingerprint key, instead of one each. The backend counts its users and
is closed when the last one lets it go, so one client closing never closes another's
state. Keyed by process too: a forked child opens its own (connections do not survive
a fork).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable

from ._backend import Backend

__all__ = ["open_shared", "release"]

_lock = threading.Lock()
_open: dict[Hashable, Backend] = {}
_users: dict[int, tuple[Hashable, int]] = {}  # id(backend): its key, its users


def open_shared(key: Hashable, opener: Callable[[], Backend]) -> Backend:
    """The backend open under ``key`` in this process, else a new one from ``opener``."""
    key = (os.getpid(), key)
    with _lock:
        found = _open.get(key)
        if found is not None:
            _users[id(found)] = (key, _users[id(found)][1] + 1)
            return found
        # Opened holding the lock: two clients built at once on one directory must
        # not open it twice (opening checks and indexes the cache file).
        backend = opener()
        _open[key] = backend
        _users[id(backend)] = (key, 1)
        return backend


def release(backend: Backend) -> None:
    """One user is done with ``backend``: closed if it was the last (or never shared)."""
    with _lock:
        found = _users.get(id(backend))
        if found is not None:
            key, users = found
            if users > 1:
                _users[id(backend)] = (key, users - 1)
                return
            del _users[id(backend)]
            if _open.get(key) is backend:
                del _open[key]
    backend.close()
