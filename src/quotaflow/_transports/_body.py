"""Reading a body when a rule needs it, and only then. Strictly private.

The stack streams every answer to the caller as it arrives, except where a rule must
read it first: a profile's ``classify``, ``read_quota`` or ``freshness`` on a profile
that says ``reads_body``, or a failure the fallback keeps. Such a read stops at a size
cap: past it, the answer streams on unread (the chunks already read first), so a huge
or hostile body never sits in memory whole.

The read answer carries its raw bytes (``RAW``), so that the outermost layer can hand
the caller an unread copy that says exactly what the origin said (Content-Encoding
included): the client's own read then sets ``elapsed``, and ``stream()`` and
``iter_raw()`` work as without quotaflow.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

# The raw (still encoded) body of an answer a layer read, in its extensions.
RAW = "quotaflow.raw"


def read_body(response: httpx.Response, limit: int) -> httpx.Response:
    """``response`` with its body read, if it is at most ``limit`` bytes; past that,
    ``response`` unread, streaming on. An answer already read is returned as it is."""
    if response.is_stream_consumed:
        return response
    chunks: list[bytes] = []
    size = 0
    raw = response.iter_raw()
    try:
        for chunk in raw:
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                return _copy(response, Prefixed(chunks, raw, response))
    except BaseException:
        response.close()
        raise
    return decoded(response, b"".join(chunks), limit)


async def aread_body(response: httpx.Response, limit: int) -> httpx.Response:
    """Async twin of :func:`read_body`."""
    if response.is_stream_consumed:
        return response
    chunks: list[bytes] = []
    size = 0
    raw = response.aiter_raw()
    try:
        async for chunk in raw:
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                return _copy(response, AsyncPrefixed(chunks, raw, response))
    except BaseException:
        await response.aclose()
        raise
    return decoded(response, b"".join(chunks), limit)


def decoded(response: httpx.Response, raw: bytes, limit: int) -> httpx.Response:
    """A read copy of ``response`` over its ``raw`` bytes, if they decode to at most
    ``limit`` bytes; else an unread one (the rules then see the headers alone). Decoded
    in slices, so a decompression bomb stops at the limit instead of filling memory."""
    if "content-encoding" not in response.headers:
        if len(raw) > limit:  # not encoded: the decoded size is the raw one
            return _copy(response, httpx.ByteStream(raw))
    else:
        size = 0
        for part in _copy(response, _Slices(raw)).iter_bytes():
            size += len(part)
            if size > limit:
                return _copy(response, httpx.ByteStream(raw))
    read = _copy(response, httpx.ByteStream(raw), raw)
    read.read()  # within the limit: proven just above
    return read


class _Slices(httpx.SyncByteStream):
    """Raw bytes in slices: a decoder never inflates more than a slice at once."""

    def __init__(self, raw: bytes, size: int = 2**14) -> None:
        self._raw, self._size = raw, size

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self._raw), self._size):
            yield self._raw[start : start + self._size]


def _copy(response: httpx.Response, stream: Any, raw: bytes | None = None) -> httpx.Response:
    extensions = dict(response.extensions)
    if raw is not None:
        extensions[RAW] = raw
    copy = httpx.Response(
        response.status_code, headers=response.headers, stream=stream, extensions=extensions
    )
    with contextlib.suppress(RuntimeError):  # no request yet below the client
        copy.request = response.request
    return copy


def unread(response: httpx.Response) -> httpx.Response:
    """``response`` as the client expects it from a transport: not yet read. One that a
    layer read comes back as an unread copy over the same raw bytes."""
    raw = response.extensions.get(RAW)
    if not response.is_stream_consumed or not isinstance(raw, bytes):
        return response
    extensions = {k: v for k, v in response.extensions.items() if k != RAW}
    return _copy(_with(response, extensions), httpx.ByteStream(raw))


def _with(response: httpx.Response, extensions: dict[str, Any]) -> httpx.Response:
    response.extensions = extensions
    return response


class Prefixed(httpx.SyncByteStream):
    """The chunks already read, then the rest of the answer's raw stream."""

    def __init__(self, head: list[bytes], rest: Iterator[bytes], response: httpx.Response) -> None:
        self._head, self._rest, self._response = head, rest, response

    def __iter__(self) -> Iterator[bytes]:
        yield from self._head
        yield from self._rest

    def close(self) -> None:
        self._response.close()


class AsyncPrefixed(httpx.AsyncByteStream):
    """Async twin of :class:`Prefixed`."""

    def __init__(
        self, head: list[bytes], rest: AsyncIterator[bytes], response: httpx.Response
    ) -> None:
        self._head, self._rest, self._response = head, rest, response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._head:
            yield chunk
        async for chunk in self._rest:
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()
