"""hishel's Redis storage on a guarded client (``_redis_client``), keeping
``redis_fail``, each lookup and store one script (``_redis_entries``). Written once,
async: ``.ci/unasync.py`` generates the sync twin, ``_sync_redis_storage.py``.
Strictly private.

A lookup Redis cannot answer is a miss under ``"open"`` (the request goes upstream; the
ledger, on its own guard, journals) and ``StateUnavailable`` under ``"closed"``. Bodies
come whole with the lookup (they are at most ``max_body``): a read that failed half-way
would reach the caller after the headers, where no rule can apply. A store that fails
leaves the answer unstored, under either mode: it was paid for and is delivered.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import hishel
import redis
from hishel._utils import make_async_iterator

from .._hot import HotEntry
from ._redis_client import GuardedAsyncRedis
from ._redis_entries import (
    LOOKUP_LUA,
    STORE_LUA,
    Found,
    Store,
    found_entries,
    hit_of,
    missed,
    unstored,
)

__all__ = ["GuardedAsyncRedisStorage"]

logger = logging.getLogger("quotaflow")


class GuardedAsyncRedisStorage(hishel.AsyncRedisStorage):
    """hishel's ``AsyncRedisStorage`` on a :class:`GuardedAsyncRedis`: its layout, one
    round trip per lookup and per store, a fresh hit read whole with :meth:`afresh`."""

    def __init__(self, client: GuardedAsyncRedis, **options: Any) -> None:
        super().__init__(client, **options)
        self._guard = client.guard
        self._lookup = client.register_script(LOOKUP_LUA)
        self._store = client.register_script(STORE_LUA)
        self._data = f"{self._key_prefix}:"

    def _hit_key(self, id: uuid.UUID) -> str:
        return f"{self._key_prefix}:hit:{id.hex}"

    async def afresh(self, key: str, resource: str, now: float, max_body: int) -> HotEntry | None:
        """The fresh answer a plain GET of ``resource`` is served as it is (what
        ``_cache.read_fresh`` makes of :meth:`get_entries`), in one round trip; None
        when there is none (``StateUnavailable`` for a lookup that failed, closed)."""
        guard = self._guard
        if guard.reachable():
            losses = guard.losses
            try:
                stored = time.time()
                reply = await self._lookup(
                    keys=[self._idx_key(key)], args=[repr(stored), self._data, 1]
                )
                if reply and isinstance(reply[0], bytes):
                    return hit_of(reply, resource, now, max_body)
                found = await self._found(key, reply, stored)
                return found.fresh(resource, now, max_body)
            except redis.RedisError:
                logger.debug("quotaflow: a lookup in Redis failed", exc_info=True)
            if guard.losses == losses:
                return None
        missed(guard)
        return None

    async def get_entries(self, key: str) -> list[hishel.Entry]:
        guard = self._guard
        if guard.reachable():
            losses = guard.losses
            try:
                stored = time.time()
                rows = await self._lookup(
                    keys=[self._idx_key(key)], args=[repr(stored), self._data, 0]
                )
                found = await self._found(key, rows, stored)
                return found.with_bodies(make_async_iterator)
            except redis.RedisError:
                logger.debug("quotaflow: a lookup in Redis failed", exc_info=True)
            if guard.losses == losses:
                return []
        missed(guard)
        return []

    async def _found(self, key: str, rows: list[Any], now: float) -> Found:
        """The rows' entries; what hishel's lookup writes done too (members whose data
        is gone dropped, TTIs extended)."""
        found = found_entries(rows, now, self._expires_at)
        index = self._idx_key(key)
        if found.dropped:
            with contextlib.suppress(redis.RedisError):
                await self._client.zrem(index, *found.dropped)
        for id_, expires_at in found.extend:
            await self._extend_expiry(index, id_, expires_at, now)
        return found

    async def create_entry(
        self,
        request: hishel.Request,
        response: hishel.Response,
        key: str,
        *,
        ttl: float | None = None,
        tti: float | None = None,
    ) -> hishel.Entry:
        if not self._guard.reachable():
            return unstored(request, response)
        body = response.stream if response.stream is not None else make_async_iterator([])
        assert isinstance(body, AsyncIterator)
        ttl_deadline, tti = self._limits(ttl, tti, time.time())
        store = Store(uuid.uuid4(), request, response, key, ttl_deadline, tti)
        stream = self._saving(body, store)
        return hishel.Entry(
            id=store.id, request=request, response=dataclasses.replace(response, stream=stream)
        )

    async def _saving(self, stream: AsyncIterator[bytes], store: Store) -> AsyncIterator[bytes]:
        """The stream as it comes, kept: stored once read to the end, unless it grew
        past ``max_stream_size`` (a reader that stops early stores nothing)."""
        chunks: list[bytes] | None = []
        size = 0
        limit = self.max_stream_size
        async for chunk in stream:
            if chunks is not None:
                size += len(chunk)
                if limit is not None and size > limit:
                    chunks = None
                else:
                    chunks.append(chunk)
            yield chunk
        if chunks is not None:
            await self._write(store, b"".join(chunks))

    async def _write(self, store: Store, body: bytes) -> None:
        now = time.time()
        expires_at = self._expires_at(store.ttl_deadline, store.tti, now)
        ttl_ms = self._keys_ttl_ms(expires_at, now)
        keys = [*self._data_keys(store.id), self._idx_key(store.key), self._hit_key(store.id)]
        try:
            await self._store(keys=keys, args=store.args(body, now, expires_at, ttl_ms))
        except redis.RedisError:
            logger.warning("quotaflow: an answer could not be stored in Redis", exc_info=True)

    async def update_headers(self, id: uuid.UUID, headers: hishel.Headers) -> None:
        if self._guard.reachable():
            await super().update_headers(id, headers)
            # The record says what a hit served before: lookups read the entry now.
            with contextlib.suppress(redis.RedisError):
                await self._client.delete(self._hit_key(id))

    async def remove_entry(self, id: uuid.UUID) -> None:
        if self._guard.reachable():
            await super().remove_entry(id)
