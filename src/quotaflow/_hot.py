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

import httpx
from hishel import Entry, Headers

from . import _policy
from ._cache_status import hit_member, unstamped_pairs
from ._raw import pairs_of

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
_LENGTH = b"content-length"


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


def with_length(headers: list[tuple[bytes, bytes]], body: bytes) -> list[tuple[bytes, bytes]]:
    """``headers`` (in place) stating the body's length: in Content-Length's own place
    and case if there is one, else last."""
    length = b"%d" % len(body)
    for i, (name, _) in enumerate(headers):
        if name.lower() == b"content-length":
            headers[i] = (name, length)
            return headers
    headers.append((b"content-length", length))
    return headers


def _kept(pairs: Iterable[tuple[bytes, bytes]], body: bytes) -> list[tuple[bytes, bytes]]:
    """The pairs as a hit restates them: less age and cookies, its own length (in the
    place and case the answer gave it)."""
    length = b"%d" % len(body)
    kept = []
    stated = False
    for k, v in pairs:
        low = k.lower()
        if low == _LENGTH:
            if not stated:
                kept.append((k, length))
                stated = True
        elif low not in _RESTATED:
            kept.append((k, v))
    if not stated:
        kept.append((_LENGTH, length))
    return unstamped_pairs(kept)


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
    """Stored headers, as sent (``_raw``), as a hit restates them (less age...; a stated
    Content-Length stays in its place, its value then restated by ``with_length``)."""
    return [
        (k, v) for k, v in pairs_of(headers) if k.lower() not in _RESTATED or k.lower() == _LENGTH
    ]


def stored_entry(entry: Entry, body: bytes, lifetime: _Lifetime) -> HotEntry:
    """A hot entry for a stored answer that :func:`fresh_stored` accepted, given the
    body as stored (still in its Content-Encoding, if it has one, like its headers)."""
    kept = with_length(_kept_stored(entry.response.headers), body)
    return HotEntry(200, kept, body, *lifetime)


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
