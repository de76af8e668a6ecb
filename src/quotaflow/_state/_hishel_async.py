"""The async stack's SQLite cache storage: :class:`SqliteCache`'s operations, one hop to a
worker thread each. Part of ``_hishel.py``'s fence. Strictly private."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import anyio
import hishel

from ._hishel import SqliteCache
from ._hishel_store import asaving

__all__ = ["AsyncSqliteCache"]


class AsyncSqliteCache(hishel.AsyncBaseStorage):
    """The async stack's storage: :class:`SqliteCache`'s, each operation one hop to a
    worker thread (hishel's async SQLite storage hops per statement, some twenty per
    miss), a stored answer's rows one more at the end of its body."""

    def __init__(self, path: Path) -> None:
        self.blocking = SqliteCache(path)
        super().__init__()
        self.spell = self.blocking.spell

    @property
    def max_stream_size(self) -> int | None:
        """The blocking storage's, which stores (the client sets it to ``max_body``)."""
        return self.blocking.max_stream_size

    @max_stream_size.setter
    def max_stream_size(self, value: int | None) -> None:
        self.blocking.max_stream_size = value

    async def create_entry(
        self,
        request: hishel.Request,
        response: hishel.Response,
        key: str,
        *,
        ttl: float | None = None,
        tti: float | None = None,
    ) -> hishel.Entry:
        entry, pending = self.blocking.pending(request, response, key, ttl, tti)
        body = response.stream if response.stream is not None else _nothing()
        assert isinstance(body, AsyncIterable)
        stream = asaving(self.blocking, body, pending)
        return replace(entry, response=replace(response, stream=stream))

    async def get_entries(self, key: str) -> list[hishel.Entry]:
        if self.blocking.holds_none(key):
            return []  # a new key (a miss): seen on the loop, in less than a hop costs
        entries = await anyio.to_thread.run_sync(self.blocking.get_entries, key)
        return [_async_body(entry) for entry in entries]

    async def update_headers(self, id: uuid.UUID, headers: hishel.Headers) -> None:
        await anyio.to_thread.run_sync(self.blocking.update_headers, id, headers)

    async def remove_entry(self, id: uuid.UUID) -> None:
        await anyio.to_thread.run_sync(self.blocking.remove_entry, id)

    async def close(self) -> None:
        self.blocking.close()


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover


async def _chunks(stream: Iterator[bytes]) -> AsyncIterator[bytes]:
    """A stored body read a chunk a hop (hishel reads one chunk a statement)."""
    while (chunk := await anyio.to_thread.run_sync(next, stream, None)) is not None:
        yield chunk


def _async_body(entry: hishel.Entry) -> hishel.Entry:
    stream = entry.response.stream
    assert isinstance(stream, Iterator)
    return replace(entry, response=replace(entry.response, stream=_chunks(stream)))
