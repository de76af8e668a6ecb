from __future__ import annotations

import anyio.to_thread
import httpx

from .._waitroom import AsyncWaitRoom, WaitRoom
from ._core import Limiter, call_of, upstream_request


class RateLimitTransport(httpx.BaseTransport):
    """Innermost layer: only real upstream calls spend rate and quota. Strictly private."""

    def __init__(
        self, next_transport: httpx.BaseTransport, limiter: Limiter, rooms: dict[str, WaitRoom]
    ) -> None:
        self.next_transport = next_transport
        self._limiter = limiter
        self._rooms = rooms

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        call = call_of(request)
        if call is None or not self._limiter.limits(call, request):
            response = self.next_transport.handle_request(upstream_request(request, call))
            if call is not None and call.profile.name != "default":
                response.read()
                self._limiter.settle(call, None, response)
            return response
        limiter = self._limiter
        ticket = limiter.reserve(call, request)
        try:
            if (room := self._rooms.get(call.profile.name)) is not None:
                room.admit(call)
        except BaseException:
            limiter.release(call, ticket)
            raise
        try:
            response = self.next_transport.handle_request(upstream_request(request, call))
            response.read()
        except BaseException as exc:
            limiter.abandon(call, ticket, exc)
            raise
        limiter.settle(call, ticket, response)
        return response

    def close(self) -> None:
        self.next_transport.close()
        self._limiter.close()


class AsyncRateLimitTransport(httpx.AsyncBaseTransport):
    """Async twin of :class:`RateLimitTransport`; state I/O runs off the event loop."""

    def __init__(
        self,
        next_transport: httpx.AsyncBaseTransport,
        limiter: Limiter,
        rooms: dict[str, AsyncWaitRoom],
    ) -> None:
        self.next_transport = next_transport
        self._limiter = limiter
        self._rooms = rooms

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        call = call_of(request)
        run = anyio.to_thread.run_sync
        if call is None or not self._limiter.limits(call, request):
            response = await self.next_transport.handle_async_request(
                upstream_request(request, call)
            )
            if call is not None and call.profile.name != "default":
                await response.aread()
                await run(self._limiter.settle, call, None, response)
            return response
        limiter = self._limiter
        ticket = await run(limiter.reserve, call, request)
        try:
            if (room := self._rooms.get(call.profile.name)) is not None:
                await room.admit(call)
        except BaseException:
            await run(limiter.release, call, ticket)
            raise
        try:
            response = await self.next_transport.handle_async_request(
                upstream_request(request, call)
            )
            await response.aread()
        except BaseException as exc:
            await run(limiter.abandon, call, ticket, exc)
            raise
        await run(limiter.settle, call, ticket, response)
        return response

    async def aclose(self) -> None:
        await self.next_transport.aclose()
        self._limiter.close()
