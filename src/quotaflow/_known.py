"""Storage keys known to hold nothing: what lets a request that needs no work skip the
storage. Strictly private.

A key is known empty once this process has removed everything stored under it (an answer
that replaced the old ones, an unsafe request that invalidated them) and stays so until
this process stores an answer under it (one record per state backend, shared by the
clients on it: ``known_for``). While it is, the storage is not read for it: a
GET whose answers are never reused (no freshness, no validator, no fallback use) and a
POST to a host no profile matches go upstream without touching it. Across processes the
knowledge may lag: an answer another process stores meanwhile is not seen (nor
invalidated) here until this process stores one of its own under the key, which, like
the hot tier's lag (``_hot.py``), lasts at most that answer's freshness.
"""

from __future__ import annotations

import threading
import weakref

__all__ = ["EmptyKeys", "known_for"]

# Kept per key; past this many, forgotten all at once (the next request per key then
# reads the storage once more, as without this).
_LIMIT = 4096


class EmptyKeys:
    """The keys this process knows hold nothing in storage. Strictly private."""

    def __init__(self, limit: int = _LIMIT) -> None:
        self._keys: set[str] = set()
        self._limit = limit

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def emptied(self, key: str) -> None:
        """Everything under ``key`` was removed (or never was) by this process."""
        if len(self._keys) >= self._limit:
            self._keys.clear()
        self._keys.add(key)

    def filled(self, key: str) -> None:
        """An answer was stored under ``key``."""
        self._keys.discard(key)


_lock = threading.Lock()
_known: weakref.WeakKeyDictionary[object, EmptyKeys] = weakref.WeakKeyDictionary()


def known_for(backend: object) -> EmptyKeys:
    """The record of the clients on ``backend`` (shared per state directory / Redis
    prefix, ``_state/_shared.py``): what one stores, the others see."""
    with _lock:
        found = _known.get(backend)
        if found is None:
            found = _known[backend] = EmptyKeys()
        return found
