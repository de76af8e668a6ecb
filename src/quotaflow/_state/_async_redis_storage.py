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
from typing import Any, cast

import hishel
import redis
from hishel._core._storages._packing import pack, unpack
from hishel._utils import make_async_iterator

from .._hot import HotEntry
from ._redis_client import GuardedAsyncRedis
from ._redis_entries import (
    LOOKUP_LUA,
    REMOVE_LUA,
    RENEW_LUA,
    STORE_LUA,
    Found,
    Store,
    cache_key,
    found_entries,
    hit_of,
    missed,
    record,
    record_body,
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
        self._remove = client.register_script(REMOVE_LUA)
        self._renew = client.register_script(RENEW_LUA)
        self._data = f"{self._key_prefix}:"

    def _hit_key(self, key: str) -> str:
        return f"{self._key_prefix}:hit:{key}"

    async def afresh(self, key: str, resource: str, now: float, max_body: int) -> HotEntry | None:
        """The fresh answer a plain GET of ``resource`` is served as it is (what
        ``_cache.read_fresh`` makes of :meth:`get_entries`), from the key's hit record:
        one ``GET``. None when there is none (``StateUnavailable`` for a lookup that
        failed, closed); a key without a record is left to hishel."""
        guard = self._guard
        if guard.reachable():
            losses = guard.losses
            try:
                raw = cast("bytes | None", await self._client.get(self._hit_key(key)))
                return None if raw is None else hit_of(raw, resource, now, max_body)
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
                    keys=[self._idx_key(key)], args=[repr(stored), self._data]
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
        if found.dropped:  # as hishel's lookup does; the hit record may be theirs
            with contextlib.suppress(redis.RedisError):
                await self._client.zrem(index, *found.dropped)
                await self._client.delete(self._hit_key(key))
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
        if not self._guard.reachable():  # lost while the body streamed: left unstored
            return
        now = time.time()
        expires_at = self._expires_at(store.ttl_deadline, store.tti, now)
        ttl_ms = self._keys_ttl_ms(expires_at, now)
        keys = [*self._data_keys(store.id), self._idx_key(store.key), self._hit_key(store.key)]
        try:
            await self._store(keys=keys, args=store.args(body, now, expires_at, ttl_ms))
        except redis.RedisError:
            logger.warning("quotaflow: an answer could not be stored in Redis", exc_info=True)

    async def update_headers(self, id: uuid.UUID, headers: hishel.Headers) -> None:
        """hishel's, and the key's hit record, if it is this entry's, rewritten with
        the new headers (a 304 renews the freshness: hits go on reading it)."""
        if not self._guard.reachable():
            return
        entry_key, _, done_key = self._data_keys(id)
        try:
            data, done = cast("list[bytes | None]", await self._client.mget(entry_key, done_key))
            if data is None:
                return
            request, response = unpack(bytes(data))
            response = dataclasses.replace(response, headers=headers)
            hit_key, hit = await self._renewed(id, done, request, response)
            packed = pack(request, response)
            if hit_key is None:
                # xx: never brings back an entry that expired meanwhile (as hishel).
                await self._client.set(entry_key, packed, xx=True, keepttl=True)
            else:  # the record too, if still this entry's (RENEW_LUA)
                await self._renew(keys=[entry_key, hit_key], args=[packed, id.hex, hit])
        except redis.RedisError:
            logger.warning("quotaflow: a stored answer's headers were not renewed", exc_info=True)

    async def _renewed(
        self, id: uuid.UUID, done: bytes | None, request: hishel.Request, response: hishel.Response
    ) -> tuple[str | None, bytes]:
        """The key's hit record and what it becomes, if it is entry ``id``'s."""
        if done is None:
            return None, b""
        hit_key = self._hit_key(cache_key(done))
        raw = cast("bytes | None", await self._client.get(hit_key))
        body = None if raw is None else record_body(raw, id)
        if body is None:
            return None, b""
        return hit_key, record(id, request, response, body)

    async def remove_entry(self, id: uuid.UUID) -> None:
        """hishel's in two calls (:data:`REMOVE_LUA`), the hit record with it."""
        if not self._guard.reachable():
            return
        entry_key, stream_key, done_key = self._data_keys(id)
        try:
            done = cast("bytes | None", await self._client.get(done_key))
            if done is None:  # still being written: no reader to protect (as hishel)
                await self._client.delete(entry_key, stream_key)
                return
            key = cache_key(done)
            keys = [entry_key, stream_key, done_key, self._idx_key(key), self._hit_key(key)]
            await self._remove(keys=keys, args=[id.hex, self._soft_delete_ttl_ms])
        except redis.RedisError:
            logger.warning("quotaflow: a stored answer could not be removed", exc_info=True)
