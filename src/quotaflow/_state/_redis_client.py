"""Redis clients whose every command passes a ``Guard`` (``_redis_guard``), and hishel
storages on them that keep ``redis_fail``. Strictly private.

The clients (sync and async, their pipelines too) send nothing while their guard leaves
Redis alone, note an outage in it, and raise only ``RedisError``: a socket error redis-py
let through (a bare ``ConnectionRefusedError`` while Redis restarts) becomes a
``redis.ConnectionError``, which hishel's storages turn into a miss or an answer left
unstored instead of handing it to the caller.

The storages then apply ``redis_fail`` to a lookup: a stored answer whose lookup or body
read failed is a miss under ``"open"`` (the request goes upstream; the ledger, on its own
guard, journals) and ``StateUnavailable`` under ``"closed"``. Bodies are read whole at
lookup (they are at most ``max_body``): a read that fails half-way would reach the caller
after the headers, where no rule can apply. A store that fails leaves the answer
unstored, under either mode: it was paid for and is delivered.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any, cast

import hishel
import redis
import redis.asyncio
import redis.asyncio.client
import redis.client
from hishel._utils import make_async_iterator, make_sync_iterator

from ._redis_guard import Guard


class GuardedRedis(redis.Redis):
    """A ``redis.Redis`` whose commands and pipelines pass ``guard``."""

    guard: Guard

    def execute_command(self, *args: Any, **options: Any) -> Any:
        send = super().execute_command
        return self.guard.call(lambda: send(*args, **options))  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Any:
        pipe = _GuardedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.guard = self.guard
        return pipe


class _GuardedPipeline(redis.client.Pipeline):
    guard: Guard

    def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        send = super().immediate_execute_command
        return self.guard.call(lambda: send(*args, **options))  # type: ignore[no-untyped-call]

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        send = super().execute
        return self.guard.call(lambda: send(raise_on_error))


class GuardedAsyncRedis(redis.asyncio.Redis):
    """:class:`GuardedRedis` for asyncio."""

    guard: Guard

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        send = super().execute_command
        return await self.guard.acall(lambda: send(*args, **options))  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Any:
        pipe = _GuardedAsyncPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.guard = self.guard
        return pipe


class _GuardedAsyncPipeline(redis.asyncio.client.Pipeline):
    guard: Guard

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        send = super().immediate_execute_command
        return await self.guard.acall(lambda: send(*args, **options))  # type: ignore[no-untyped-call]

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        send = super().execute
        return cast("list[Any]", await self.guard.acall(lambda: send(raise_on_error)))


def guarded(cls: type[Any], url: str, guard: Guard, **options: Any) -> Any:
    """A ``cls`` (one of the two above) for ``url``, on ``guard``."""
    client = cls.from_url(url, **options)
    client.guard = guard
    return client


def _unstored(request: hishel.Request, response: hishel.Response) -> hishel.Entry:
    return hishel.Entry(id=uuid.uuid4(), request=request, response=response)


class GuardedRedisStorage(hishel.RedisStorage):
    """hishel's ``RedisStorage`` on a :class:`GuardedRedis`, keeping ``redis_fail``."""

    def __init__(self, client: GuardedRedis, **options: Any) -> None:
        super().__init__(client, **options)
        self._guard = client.guard

    def get_entries(self, key: str) -> list[hishel.Entry]:
        guard = self._guard
        if guard.reachable():
            losses = guard.losses
            entries = []
            try:
                for entry in super().get_entries(key):
                    stream = entry.response.stream
                    assert stream is not None
                    try:
                        body = b"".join(cast("Any", stream))
                    except RuntimeError:  # hishel: deleted while it was read
                        continue
                    entries.append(_with_body(entry, make_sync_iterator([body])))
            except redis.RedisError:
                pass
            if guard.losses == losses:
                return entries
        return _missed(guard)

    def create_entry(
        self,
        request: hishel.Request,
        response: hishel.Response,
        key: str,
        *,
        ttl: float | None = None,
        tti: float | None = None,
    ) -> hishel.Entry:
        if not self._guard.reachable():
            return _unstored(request, response)
        return super().create_entry(request, response, key, ttl=ttl, tti=tti)

    def update_headers(self, id: uuid.UUID, headers: hishel.Headers) -> None:
        if self._guard.reachable():
            super().update_headers(id, headers)

    def remove_entry(self, id: uuid.UUID) -> None:
        if self._guard.reachable():
            super().remove_entry(id)


class GuardedAsyncRedisStorage(hishel.AsyncRedisStorage):
    """:class:`GuardedRedisStorage` for asyncio."""

    def __init__(self, client: GuardedAsyncRedis, **options: Any) -> None:
        super().__init__(client, **options)
        self._guard = client.guard

    async def get_entries(self, key: str) -> list[hishel.Entry]:
        guard = self._guard
        if guard.reachable():
            losses = guard.losses
            entries = []
            try:
                for entry in await super().get_entries(key):
                    stream = cast("Any", entry.response.stream)
                    try:
                        body = b"".join([chunk async for chunk in stream])
                    except RuntimeError:  # hishel: deleted while it was read
                        continue
                    entries.append(_with_body(entry, make_async_iterator([body])))
            except redis.RedisError:
                pass
            if guard.losses == losses:
                return entries
        return _missed(guard)

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
            return _unstored(request, response)
        return await super().create_entry(request, response, key, ttl=ttl, tti=tti)

    async def update_headers(self, id: uuid.UUID, headers: hishel.Headers) -> None:
        if self._guard.reachable():
            await super().update_headers(id, headers)

    async def remove_entry(self, id: uuid.UUID) -> None:
        if self._guard.reachable():
            await super().remove_entry(id)


def _with_body(entry: hishel.Entry, stream: Any) -> hishel.Entry:
    return dataclasses.replace(entry, response=dataclasses.replace(entry.response, stream=stream))


def _missed(guard: Guard) -> list[hishel.Entry]:
    """A lookup Redis could not answer: a miss, or ``StateUnavailable`` (closed)."""
    if guard.fail == "closed":
        raise guard.refusal()
    return []
