"""The hot tier: recently used fresh answers in process memory. Strictly private.

A hit here costs about what building an ``httpx.Response`` costs; hishel's storage
(the warm tier, SQLite or Redis) is only read on a miss here. An entry is served
only until the freshness its answer was stored with runs out, so it never outlives
the warm tier's entry, and the stack replaces or drops it whenever it replaces or
invalidates that entry. Across processes an entry may lag a newer one by at most
its own freshness window.

On a miss here, a plain GET whose key holds exactly one fresh 200 (the kind this
tier keeps) is read from storage directly and kept; every other case (several
answers varying by request header, stale answers to revalidate, request
directives) goes through hishel's RFC 9111 state machine.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple, Protocol

import httpx
from hishel import Entry, Headers

from . import _policy
from ._cache_status import hit_member, unstamped_pairs

# Requests that ask something of the cache that the hot tier cannot judge.
HOT_BYPASS = frozenset(
    {b"cache-control", b"pragma", b"range", b"if-none-match", b"if-modified-since"}
)
_NO_REUSE = re.compile("no-cache|no-store|private=|must-understand")
# The body is kept as it came (still in its Content-Encoding, as hishel stores it), so
# only its length and age are restated. A session cookie is the live answer's alone (the
# client's jar took it): a hit never replays it, as the stored entry never holds it.
_RESTATED = frozenset(
    {b"age", b"content-length", b"transfer-encoding", b"set-cookie", b"set-cookie2"}
)
_NAMES_RESTATED = frozenset(name.decode() for name in _RESTATED)


class HotEntry:
    """One fresh answer. Immutable but for a memo replaced whole (thread-safe): the
    headers of the current second of age, ``Cache-Status`` (RFC 9211) included: the
    fallback layer does not stamp these hits again (``Cached.stamped``). Entries made
    by :meth:`carrying` share it."""

    __slots__ = ("_aged", "_prior", "body", "expires", "headers", "received", "status", "ttl")

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        received: float,
        expires: float,
        ttl: float,
    ) -> None:
        self.status = status
        # Any Cache-Status from the origin's side, on one line, ours to follow.
        prior = [v for k, v in headers if k.lower() == b"cache-status"]
        self._prior = b", ".join(prior) + b", " if prior else b""
        if prior:
            headers = [(k, v) for k, v in headers if k.lower() != b"cache-status"]
        self.headers = headers
        self.body = body
        self.received = received
        self.expires = expires
        self.ttl = ttl
        self._aged: list[tuple[int, httpx.Headers] | None] = [None]

    def carrying(self, body: bytes) -> HotEntry:
        """This answer with ``body`` in place of its own, of the same length (the same
        stored answer read again): its headers' memo shared, so not parsed again."""
        twin = HotEntry.__new__(HotEntry)
        twin.status, twin.headers, twin._prior = self.status, self.headers, self._prior
        twin.received, twin.expires, twin.ttl = self.received, self.expires, self.ttl
        twin.body, twin._aged = body, self._aged
        return twin

    def response(self, now: float) -> httpx.Response:
        age = max(0, int(now - self.received))
        aged = self._aged[0]
        if aged is None or aged[0] != age:
            # Parsed once per second of age; each response copies the parsed list.
            status = self._prior + hit_member(self.ttl - age).encode()
            headers = [*self.headers, (b"age", b"%d" % age), (b"cache-status", status)]
            aged = self._aged[0] = (age, httpx.Headers(headers))
        # A ready byte stream (content= would re-encode the body), left unread: the
        # client reads it, and so sets ``elapsed`` and decodes it as it would any answer.
        response = httpx.Response(self.status, headers=aged[1], stream=httpx.ByteStream(self.body))
        # The copy of the headers would work their encoding out again on first use.
        response.headers.encoding = aged[1].encoding
        return response


_Lifetime = tuple[float, float, float]  # received, expires, ttl


def _reusable(get: Callable[[str], str | None]) -> tuple[float, int] | None:
    """(received, max-age) of an answer anyone may reuse as is while fresh, or None.
    ``get`` reads one header (several values joined), from httpx or hishel headers."""
    if get("vary") is not None:
        return None
    cache_control = get("cache-control") or ""
    ttl = _policy.max_age_directive(cache_control)
    if ttl is None or _NO_REUSE.search(cache_control):
        return None
    received = _policy.timestamp(get("date"))
    if received is None:
        return None
    return received, ttl


def _lifetime(get: Callable[[str], str | None], now: float) -> _Lifetime | None:
    """(received, expires, ttl) of a fresh answer anyone may reuse as is, or None."""
    reusable = _reusable(get)
    if reusable is None:
        return None
    received, ttl = reusable
    # hishel: fresh while int(now - Date) < max-age.
    expires = received + ttl
    if expires <= now:
        return None
    return received, expires, float(ttl)


def _kept(pairs: Iterable[tuple[bytes, bytes]], body: bytes) -> list[tuple[bytes, bytes]]:
    kept = unstamped_pairs([(k, v) for k, v in pairs if k.lower() not in _RESTATED])
    kept.append((b"content-length", b"%d" % len(body)))
    return kept


def entry_for(response: httpx.Response, body: bytes, now: float) -> HotEntry | None:
    """A hot entry for a reusable 200 answer with a max-age, or None. ``body`` is the
    body as its headers describe it: the raw bytes, in their Content-Encoding."""
    if response.status_code != 200:
        return None
    lifetime = _lifetime(response.headers.get, now)
    if lifetime is None:
        return None
    return HotEntry(200, _kept(response.headers.raw, body), body, *lifetime)


def _stored_header(headers: Headers) -> Callable[[str], str | None]:
    values_of = headers.get_list

    def get(name: str) -> str | None:
        values = values_of(name)
        return None if values is None else ", ".join(values)

    return get


def fresh_stored(
    entries: Sequence[Entry], resource: str, now: float, max_body: int
) -> _Lifetime | None:
    """Whether the hot tier could keep the stored answer, judged on its headers alone
    (before its body is read): the only entry under the key, a fresh 200 to a GET of
    ``resource``, whose Content-Length says it fits in ``max_body``. Anything else
    (several answers varying by request header, stale ones to revalidate, large
    bodies, which hishel streams from storage in chunks) is left to hishel."""
    if len(entries) != 1:
        return None
    entry = entries[0]
    if (
        entry.request.method != "GET"
        or entry.request.url != resource
        or entry.response.status_code != 200
    ):
        return None
    get = _stored_header(entry.response.headers)
    length = get("content-length")
    if length is None or not length.isdigit() or int(length) > max_body:
        return None
    return _lifetime(get, now)


def _kept_stored(headers: Headers) -> list[tuple[bytes, bytes]]:
    """Stored headers as a hit restates them (less age, length...)."""
    values_of = headers.get_list
    # hishel keeps names in lower case: one pass over them, as _kept would.
    return [
        (k.encode(), v.encode())
        for k in headers
        if k not in _NAMES_RESTATED
        for v in values_of(k) or ()
    ]


def stored_entry(entry: Entry, body: bytes, lifetime: _Lifetime) -> HotEntry:
    """A hot entry for a stored answer that :func:`fresh_stored` accepted, given the
    body as stored (still in its Content-Encoding, if it has one, like its headers)."""
    kept = _kept_stored(entry.response.headers)
    kept.append((b"content-length", b"%d" % len(body)))
    return HotEntry(200, kept, body, *lifetime)


# What a hit needs of a stored answer, worked out once when it is stored (the Redis
# storage keeps it beside the entry, ``_redis_entries``): the URL it answers, its
# Content-Length, (received, expires, ttl) and its headers as a hit restates them.
Record = tuple[str, int, float, float, float, list[tuple[bytes, bytes]]]


def record_of(method: str, url: str, status: int, headers: Headers) -> Record | None:
    """The record of a stored answer :func:`fresh_stored` could accept while fresh (a
    200 to a GET with a Content-Length and a max-age anyone may reuse), or None: its
    :class:`Shape` with the URL it answers."""
    shape = stored_shape(method, status, headers)
    if shape is None:
        return None
    received, ttl, length, kept = shape
    return (url, length, received, received + ttl, float(ttl), kept)


def recorded_entry(
    record: Record, body: bytes, resource: str, now: float, max_body: int
) -> HotEntry | None:
    """A hot entry for the only stored answer under a key, from its record: what
    :func:`fresh_stored` and :func:`stored_entry` make of it, without parsing a header."""
    url, length, received, expires, ttl, headers = record
    if url != resource or length > max_body or expires <= now:
        return None
    kept = [*headers, (b"content-length", b"%d" % len(body))]
    return HotEntry(200, kept, body, received, expires, ttl)


class Shape(NamedTuple):
    """What :func:`fresh_stored` judges of a stored answer on its headers alone, worked
    out once when it is stored (kept beside the entry, ``_state/_hishel.py``), so that
    a warm read parses nothing: the answer's Date and max-age, its stated length and
    its headers as a hit restates them (Content-Length from the body read)."""

    received: float
    ttl: int
    length: int
    headers: list[tuple[bytes, bytes]]


def stored_shape(method: str, status: int, headers: Headers) -> Shape | None:
    """The :class:`Shape` of an answer :func:`fresh_stored` accepts while it is fresh
    (a 200 to a GET whose Content-Length is stated, reusable as is), or None."""
    if method != "GET" or status != 200:
        return None
    get = _stored_header(headers)
    length = get("content-length")
    if length is None or not length.isdigit():
        return None
    reusable = _reusable(get)
    if reusable is None:
        return None
    return Shape(reusable[0], reusable[1], int(length), _kept_stored(headers))


def warm_entry(
    headers: list[tuple[bytes, bytes]], body: bytes, received: float, ttl: float
) -> HotEntry:
    """The hot entry of a stored answer read with its :class:`Shape`, fresh until
    ``received + ttl`` (as :func:`fresh_stored` then :func:`stored_entry` make it)."""
    headers.append((b"content-length", b"%d" % len(body)))
    return HotEntry(200, headers, body, received, received + ttl, float(ttl))


class FreshRows(Protocol):
    """A storage's own read of a fresh stored answer, in one query over the shapes kept
    beside its entries: the answer :func:`fresh_stored` and :func:`stored_entry` would
    give, or None (anything else is hishel's to answer).

    ``fresh`` reads as the storage does (waiting for a lock, keeping the entry's
    last use current); ``peek`` never waits nor writes, to run on an event loop:
    ``(False, None)`` when it would have to (read again with ``fresh``, off the loop).
    """

    def fresh(self, key: str, url: str, now: float, limit: int) -> HotEntry | None: ...

    def peek(self, key: str, url: str, now: float, limit: int) -> tuple[bool, HotEntry | None]: ...


class HotTier:
    """An LRU of fresh answers, bounded by entries and bytes; thread-safe."""

    def __init__(self, max_entries: int, max_bytes: int, max_body: int | None = None) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        # The largest body kept: a quarter of the tier, and never past the client's
        # max_body (what is never stored is never kept here either).
        self.max_entry = min(max_bytes // 4, max_body if max_body is not None else max_bytes)
        self._entries: OrderedDict[str, HotEntry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return self._bytes

    def get(self, key: str, now: float) -> HotEntry | None:
        if not self._entries:  # e.g. hot_entries=0: no lock to take
            return None
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
        if self.max_entries <= 0:
            return  # nothing is ever kept
        size = len(entry.body)
        if size > self.max_entry:
            self.discard(key)
            return
        with self._lock:
            self._drop(key)
            self._entries[key] = entry
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def discard(self, key: str) -> None:
        if not self._entries:
            return
        with self._lock:
            self._drop(key)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry.body)
