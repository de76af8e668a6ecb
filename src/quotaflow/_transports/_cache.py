"""What both caching twins share (``_async_cache.py`` and its generated sync twin,
``_sync_cache.py``). Strictly private."""

from __future__ import annotations

import logging
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)

import anyio
import attrs
import hishel
import httpx

from .. import _policy
from .._cold import ColdEntry, ColdStore, cold_lookup
from .._hot import HotEntry, HotTier, _lifetime, fresh_stored, stored_entry
from .._info import Route
from .._retention import AsyncRetainingStorage, RetainingStorage, is_event_stream
from .._shapes import FreshRows

logger = logging.getLogger("quotaflow")

# ResponseInfo.tier, and the reasons of hits (static: hits build nothing per request).
MEMORY, STORAGE = "memory", "storage"
FRESH_IN_MEMORY, FRESH_IN_STORAGE = "fresh in memory", "fresh in storage"
KEPT_COLD = "kept in the cold store: the profile says this answer does not change"

# How long a key found missing from the cold store is not looked for there again, in
# this process (seconds). Another process keeping it meanwhile loses nothing: the warm
# tier holds the same answer.
NOT_COLD_FOR = 30.0

# An error body the stack keeps a copy of is read up to this many bytes.
ERROR_BODY = 64 * 2**10

# A client-side cache is private (RFC 9111 §3.5): responses to authorised
# requests may be stored, since credentials never reach it anyway.
OPTIONS = hishel.CacheOptions(shared=False)


def waited_too_long(request: httpx.Request) -> httpx.PoolTimeout:
    # As httpx says when a connection held by another request does not come free in time.
    return httpx.PoolTimeout(
        "timed out waiting for a concurrent request for the same resource", request=request
    )


def worth_keeping(response: httpx.Response, hot: HotTier) -> int:
    """How many body bytes the hot tier may keep of ``response`` (0: none): a 200 that
    is stored (or served from storage), so the hot copy stays coherent with it."""
    caching = response.extensions.get("caching")
    if response.status_code != 200 or hot.max_entries <= 0:
        return 0
    if is_event_stream(response.headers.get("content-type")):
        return 0
    if not isinstance(caching, dict) or not (caching.get("stored") or caching.get("from_cache")):
        return 0
    length = response.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > hot.max_entry):
        return 0  # never kept: no copy of it is made while it streams
    return hot.max_entry


def taken_from_storage(response: httpx.Response, hot: HotTier, now: float) -> bool:
    """Whether a process waiting on the leader's lease can take ``response`` from
    storage once it is stored (its warm read serves a fresh 200 anyone may reuse, with
    a Content-Length within ``hot.max_entry``). If not, there is nothing to wait for:
    the leader gives its lease back once the answer is stored instead of letting it
    lapse (``_leasing``)."""
    length = response.headers.get("content-length")
    return (
        response.status_code == 200
        and length is not None
        and length.isdigit()
        and int(length) <= hot.max_entry
        and _lifetime(response.headers.get, now) is not None
    )


def read_fresh(
    storage: hishel.BaseStorage,
    route: Route,
    now: float,
    limit: int,
    rows: FreshRows | None = None,
) -> HotEntry | None:
    """A fresh answer read from storage without hishel's state machine: what hishel
    serves a plain GET (RFC 9111 §4) when one fresh 200 of at most ``limit`` bytes is
    stored, at a fraction of the cost; with ``rows``, in one query that parses nothing.
    Anything else, errors included, is left to hishel (which streams larger bodies from
    storage in chunks)."""
    try:
        if rows is not None:
            return rows.fresh(route.key, route.resource, now, limit)
        if isinstance(storage, RetainingStorage) and storage.one_read:
            return storage.fresh(route.key, route.resource, now, limit)
        entries = storage.get_entries(route.key)
        lifetime = fresh_stored(entries, route.resource, now, limit)
        if lifetime is None:
            return None
        stream = entries[0].response.stream
        assert isinstance(stream, Iterable)
        return stored_entry(entries[0], b"".join(stream), lifetime)
    except Exception:
        logger.debug("quotaflow: reading %s from storage failed", route.key, exc_info=True)
        return None


async def aread_fresh(
    storage: hishel.AsyncBaseStorage,
    route: Route,
    now: float,
    limit: int,
    rows: FreshRows | None = None,
) -> HotEntry | None:
    """:func:`read_fresh` on an async storage (``rows``: its twin's only, see
    ``AsyncStoredTiers``)."""
    try:
        if isinstance(storage, AsyncRetainingStorage) and storage.one_read:
            return await storage.afresh(route.key, route.resource, now, limit)
        entries = await storage.get_entries(route.key)
        lifetime = fresh_stored(entries, route.resource, now, limit)
        if lifetime is None:
            return None
        stream = entries[0].response.stream
        assert isinstance(stream, AsyncIterable)
        body = b"".join([chunk async for chunk in stream])
        return stored_entry(entries[0], body, lifetime)
    except Exception:
        logger.debug("quotaflow: reading %s from storage failed", route.key, exc_info=True)
        return None


class _Copy:
    """What both tees keep: a copy of at most ``keep`` bytes, given up past that."""

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._chunks: list[bytes] | None = []
        self._size = 0
        self._complete = False

    def _take(self, chunk: bytes) -> None:
        chunks = self._chunks
        if chunks is not None:
            self._size += len(chunk)
            if self._size > self._keep:
                self._chunks = None
            else:
                chunks.append(chunk)

    def _body(self) -> bytes | None:
        """The whole body if it was read to the end and fit, else None (once)."""
        chunks, self._chunks = self._chunks, None
        return b"".join(chunks) if self._complete and chunks is not None else None


class Tee(_Copy, httpx.SyncByteStream):
    """A response body passed on to the caller as it arrives, while keeping a copy of
    at most ``keep`` bytes; ``done(body)`` runs once, when the stream is closed: with
    the whole body if it was read to the end and fit, else None. Strictly private."""

    def __init__(
        self, stream: httpx.SyncByteStream, keep: int, done: Callable[[bytes | None], None]
    ) -> None:
        super().__init__(keep)
        self._stream = stream
        self._done: Callable[[bytes | None], None] | None = done

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            self._take(chunk)
            yield chunk
        self._complete = True

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            done, self._done = self._done, None
            if done is not None:
                done(self._body())


class AsyncTee(_Copy, httpx.AsyncByteStream):
    """Async twin of :class:`Tee`; ``done`` is awaited, even by a cancelled reader."""

    def __init__(
        self,
        stream: httpx.AsyncByteStream,
        keep: int,
        done: Callable[[bytes | None], Awaitable[None]],
    ) -> None:
        super().__init__(keep)
        self._stream = stream
        self._done: Callable[[bytes | None], Awaitable[None]] | None = done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            self._take(chunk)
            yield chunk
        self._complete = True

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            done, self._done = self._done, None
            if done is not None:
                with anyio.CancelScope(shield=True):  # a cancelled reader still lands
                    await done(self._body())


class Chunks(httpx.SyncByteStream):
    """A stored body, streamed from storage as it is read. Strictly private."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if callable(close):
            close()


class AsyncChunks(httpx.AsyncByteStream):
    """Async twin of :class:`Chunks`."""

    def __init__(self, chunks: AsyncIterable[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            yield chunk

    async def aclose(self) -> None:
        close = getattr(self._chunks, "aclose", None)
        if callable(close):
            await close()


_VALIDATORS = (b"if-none-match", b"if-modified-since")
# What a 304 carries of the stored answer (RFC 9110 §15.4.5).
_NOT_MODIFIED_HEADERS = ("cache-control", "content-location", "date", "etag", "expires", "vary")


def conditional(request: httpx.Request) -> bool:
    """Whether the caller sent validators of its own (hishel adds its own further down)."""
    return any(name.lower() in _VALIDATORS for name, _ in request.headers.raw)


@attrs.frozen
class NotModified:
    response: httpx.Response
    ttl: float


def _etags(value: str) -> list[str]:
    # Weak comparison (RFC 9110 §8.8.3.2): W/"x" and "x" match.
    return [tag.strip().removeprefix("W/") for tag in value.split(",") if tag.strip()]


def not_modified(
    entries: Sequence[hishel.Entry], request: httpx.Request, resource: str, now: float
) -> NotModified | None:
    """A 304 for the caller's conditional GET, from a fresh stored 200 of ``resource``
    whose validator matches (RFC 9111 §4.3.2; RFC 9110 §13.1.1-2: If-None-Match wins
    over If-Modified-Since), or None to ask the origin."""
    if request.method != "GET":
        return None
    wanted = request.headers.get("if-none-match")
    since = _policy.timestamp(request.headers.get("if-modified-since"))
    for entry in entries:
        stored = entry.response
        if entry.request.url != resource or stored.status_code != 200:
            continue
        headers = httpx.Headers(
            [(k, v) for k in stored.headers for v in stored.headers.get_list(k) or ()]
        )
        ttl = _policy.freshness_lifetime(headers, now)
        received = _policy.timestamp(headers.get("date"))
        if "vary" in headers or ttl is None or received is None or now - received >= ttl:
            continue
        if wanted is not None:
            etag = headers.get("etag")
            tags = _etags(wanted)
            matched = etag is not None and ("*" in tags or etag.removeprefix("W/") in tags)
        else:
            modified = _policy.timestamp(headers.get("last-modified"))
            matched = since is not None and modified is not None and modified <= since
        if not matched:
            return None
        kept = [(k, v) for k, v in headers.multi_items() if k in _NOT_MODIFIED_HEADERS]
        kept.append(("age", str(int(max(0.0, now - received)))))
        return NotModified(httpx.Response(304, headers=kept), ttl)
    return None


def look_up(
    cold: ColdStore | None,
    reader: hishel.BaseStorage,
    route: Route,
    request: httpx.Request,
    now: float,
    limit: int,
    rows: FreshRows | None = None,
) -> tuple[ColdEntry | None, HotEntry | None]:
    """The cold store's answer (``cold`` given), else a plain fresh stored one
    (:func:`read_fresh`): both blocking reads, for one worker-thread hop."""
    if cold is not None:
        kept = cold_lookup(cold, route, request, now)
        if kept is not None:
            return kept, None
    return None, read_fresh(reader, route, now, limit, rows)
