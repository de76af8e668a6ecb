from __future__ import annotations

import anyio.to_thread
import httpx

from .._info import Call
from .._state._books import Ticket
from .._state._waitroom import AsyncWaitRoom, WaitRoom
from ..exceptions import QuotaflowError
from ._body import aread_body, read_body
from ._layer import AsyncLayer, Layer
from ._limiter import Limiter
from ._route import call_of, upstream_request


class RateLimitTransport(Layer):
    """Innermost layer: only real upstream calls spend rate and quota; retries and the
    circuit breaker live here, so every attempt is limited and counted. Strictly private."""

    def __init__(
        self, next_transport: httpx.BaseTransport, limiter: Limiter, rooms: dict[str, WaitRoom]
    ) -> None:
        self.next_transport = next_transport
        self._limiter = limiter
        self._rooms = rooms

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        call = call_of(request)
        if call is None or not self._limiter.profiled(call):
            response = self.next_transport.handle_request(upstream_request(request, call))
            if call is not None:
                call.upstream = True
            return response
        limiter, attempt = self._limiter, 0
        while True:
            try:
                response = self._attempt(call, request)
            except QuotaflowError:
                raise
            except httpx.TransportError as exc:
                delay = limiter.retry_delay(call, request, attempt, error=exc)
                if delay is None:
                    raise
            else:
                delay = limiter.retry_delay(call, request, attempt, response=response)
                if delay is None:
                    return response
                response.close()
            limiter.clock.sleep(delay)
            call.waited += delay
            attempt += 1

    def _attempt(self, call: Call, request: httpx.Request) -> httpx.Response:
        limiter = self._limiter
        probe = limiter.open_circuit(call)
        ticket: Ticket | None = None
        try:
            if limiter.limits(call, request):
                ticket = limiter.reserve(call, request)
                try:
                    if (room := self._rooms.get(call.profile.name)) is not None:
                        room.admit(call)
                    # The check may have found the circuit opened by another process.
                    probe = probe or limiter.open_circuit(call)
                except BaseException:
                    limiter.release(call, ticket)
                    raise
        except BaseException:
            limiter.outcome(call, None, probe)
            raise
        try:
            response = self.next_transport.handle_request(upstream_request(request, call))
            if call.profile.reads_body:
                response = read_body(response, limiter.max_body)
                call.buffered = response.is_stream_consumed
        except BaseException as exc:
            limiter.failed(call, ticket, exc, probe)
            raise
        limiter.answered(call, ticket, response, probe)
        return response

    def _close_own(self) -> None:
        self._limiter.close()


class AsyncRateLimitTransport(AsyncLayer):
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
        if call is None or not self._limiter.profiled(call):
            response = await self.next_transport.handle_async_request(
                upstream_request(request, call)
            )
            if call is not None:
                call.upstream = True
            return response
        limiter, attempt = self._limiter, 0
        while True:
            try:
                response = await self._attempt(call, request)
            except QuotaflowError:
                raise
            except httpx.TransportError as exc:
                delay = limiter.retry_delay(call, request, attempt, error=exc)
                if delay is None:
                    raise
            else:
                delay = limiter.retry_delay(call, request, attempt, response=response)
                if delay is None:
                    return response
                await response.aclose()
            await limiter.clock.asleep(delay)
            call.waited += delay
            attempt += 1

    async def _open_circuit(self, call: Call) -> int:
        limiter = self._limiter
        if limiter.circuit_io(call):
            return await anyio.to_thread.run_sync(limiter.open_circuit, call)
        return limiter.open_circuit(call)

    async def _attempt(self, call: Call, request: httpx.Request) -> httpx.Response:
        limiter, run = self._limiter, anyio.to_thread.run_sync
        probe = await self._open_circuit(call)
        ticket: Ticket | None = None
        try:
            if limiter.limits(call, request):
                ticket = await run(limiter.reserve, call, request)
                try:
                    if (room := self._rooms.get(call.profile.name)) is not None:
                        await room.admit(call)
                    probe = probe or await self._open_circuit(call)
                except BaseException:
                    await run(limiter.release, call, ticket)
                    raise
        except BaseException:
            if probe:  # the store learns that the probe is free again
                await run(limiter.outcome, call, None, probe)
            raise
        try:
            response = await self.next_transport.handle_async_request(
                upstream_request(request, call)
            )
            if call.profile.reads_body:
                response = await aread_body(response, limiter.max_body)
                call.buffered = response.is_stream_consumed
        except BaseException as exc:
            await run(limiter.failed, call, ticket, exc, probe)
            raise
        await run(limiter.answered, call, ticket, response, probe)
        return response

    async def _aclose_own(self) -> None:
        await anyio.to_thread.run_sync(self._limiter.close)
