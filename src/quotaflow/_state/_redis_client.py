"""Redis clients whose every command passes a ``Guard`` (``_redis_guard``); hishel's
storages run on them (``_async_redis_storage``). Strictly private.

The clients (sync and async, their pipelines too) send nothing while their guard leaves
Redis alone, note an outage in it, and raise only ``RedisError``: a socket error redis-py
let through (a bare ``ConnectionRefusedError`` while Redis restarts) becomes a
``redis.ConnectionError``, which hishel's storages turn into a miss or an answer left
unstored instead of handing it to the caller.
"""

from __future__ import annotations

from typing import Any, cast

import redis
import redis.asyncio
import redis.asyncio.client
import redis.client

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
