"""The hot tier: recently used fresh answers in process memory. Strictly private.

A hit here costs about what building an ``httpx.Response`` costs; hishel's storage
(the warm tier, SQLite or Redis) is only read on a miss here. An entry is served
only until the freshness its answer was stored with runs out, so it never outlives
the warm tier's entry, and the stack replaces or drops it whenever it replaces or
invalidates that entry. Across processes an entry may lag a newer one by at most
its own freshness window.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from email.utils import parsedate_to_datetime

import attrs
import httpx

from . import _policy

# Requests that ask something of the cache that the hot tier cannot judge.
HOT_BYPASS = frozenset(
    {b"cache-control", b"pragma", b"range", b"if-none-match", b"if-modified-since"}
)
_NO_REUSE = ("no-cache", "no-store", "private=", "must-understand")
_RESTATED = frozenset({b"age", b"content-encoding", b"content-length", b"transfer-encoding"})


@attrs.frozen
class HotEntry:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    received: float
    expires: float
    ttl: float

    def response(self, now: float) -> httpx.Response:
        age = (b"age", str(int(now - self.received)).encode())
        # A ready byte stream: content= would re-encode the body (5x the cost of a hit).
        return httpx.Response(
            self.status, headers=[*self.headers, age], stream=httpx.ByteStream(self.body)
        )


def entry_for(response: httpx.Response, now: float) -> HotEntry | None:
    """A hot entry for a read, reusable 200 answer with a max-age, or None."""
    headers = response.headers
    if response.status_code != 200 or "vary" in headers:
        return None
    cache_control = headers.get("cache-control", "")
    ttl = _policy.max_age(headers)
    if ttl is None or any(word in cache_control for word in _NO_REUSE):
        return None
    try:
        received = parsedate_to_datetime(headers["date"]).timestamp()
    except (KeyError, TypeError, ValueError, IndexError, OverflowError):
        return None
    # hishel: fresh while int(now - Date) < max-age.
    expires = received + ttl
    if expires <= now:
        return None
    body = response.content
    # The body is kept decoded, so its headers must say so (as hishel does when it stores).
    kept = [(k, v) for k, v in headers.raw if k.lower() not in _RESTATED]
    kept.append((b"content-length", str(len(body)).encode()))
    return HotEntry(response.status_code, kept, body, received, expires, float(ttl))


class HotTier:
    """An LRU of fresh answers, bounded by entries and bytes; thread-safe."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, HotEntry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return self._bytes

    def get(self, key: str, now: float) -> HotEntry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires <= now:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: str, entry: HotEntry) -> None:
        size = len(entry.body)
        if self.max_entries <= 0 or size > self.max_bytes // 4:
            self.discard(key)
            return
        with self._lock:
            self._drop(key)
            self._entries[key] = entry
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def discard(self, key: str) -> None:
        with self._lock:
            self._drop(key)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry.body)
