"""What a hit needs of a stored answer, worked out once when it is stored and kept beside
it (SQLite: ``_state/_hishel_shapes.py``; Redis: ``_state/_redis_entries.py``), so that a
warm or Redis hit reads one row or key and parses no header. Strictly private."""

from __future__ import annotations

from typing import NamedTuple, Protocol

from hishel import Headers

from ._hot import HotEntry, _kept_stored, _reusable, _stored_header, with_length

__all__ = [
    "FreshRows",
    "Record",
    "Shape",
    "record_of",
    "recorded_entry",
    "stored_shape",
    "warm_entry",
]


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
    return HotEntry(200, with_length([*headers], body), body, received, expires, ttl)


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
    return HotEntry(200, with_length(headers, body), body, received, received + ttl, float(ttl))


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
