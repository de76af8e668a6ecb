"""The rate-limit layer, innermost. Written once, async: ``.ci/unasync.py`` generates the
sync twin, ``_sync_ratelimit.py`` (``make lint`` checks it is current). Strictly private."""

from __future__ import annotations

import httpx

from .._flight import offload_async
from .._info import Call
from .._state._books import Ticket
from .._state._waitroom import AsyncWaitRoom
from ..exceptions import QuotaflowError
from ._body import aread_body
from ._layer import AsyncLayer
from ._limiter import Limiter
from ._route import call_of, upstream_request


class AsyncRateLimitTransport(AsyncLayer):
    """Innermost layer: only real upstream calls spend rate and quota; retries and the
    circuit breaker live here, so every attempt is limited and counted. State I/O runs
    off the event loop (in the sync twin, in line). Strictly private."""

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
                response = await self._aattempt(call, request)
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

    async def _aopen_circuit(self, call: Call) -> int:
        limiter = self._limiter
        if limiter.circuit_io(call):
            return await offload_async(limiter.open_circuit, call)
        return limiter.open_circuit(call)

    async def _aattempt(self, call: Call, request: httpx.Request) -> httpx.Response:
        limiter = self._limiter
        probe = await self._aopen_circuit(call)
        ticket: Ticket | None = None
        try:
            if limiter.limits(call, request):
                ticket = await offload_async(limiter.reserve, call, request)
                try:
                    if limiter.wants_probe(call):
                        await self._aprobe(call)
                    if (room := self._rooms.get(call.profile.name)) is not None:
                        await room.admit(call)
                    # The check may have found the circuit opened by another process.
                    probe = probe or await self._aopen_circuit(call)
                except BaseException:
                    await offload_async(limiter.release, call, ticket)
                    raise
        except BaseException:
            if probe:  # the store learns that the probe is free again
                await offload_async(limiter.outcome, call, None, probe)
            raise
        try:
            response = await self.next_transport.handle_async_request(
                upstream_request(request, call)
            )
            if call.profile.reads_body:
                response = await aread_body(response, limiter.max_body)
                call.buffered = response.is_stream_consumed
        except BaseException as exc:
            await offload_async(limiter.failed, call, ticket, exc, probe)
            raise
        await offload_async(limiter.answered, call, ticket, response, probe)
        return response

    async def _aprobe(self, call: Call) -> None:
        """The free probe (``ApiProfile.probe``) for a lost ledger; never fails the
        request, whose own answer syncs the ledger too."""
        try:
            response = await self.next_transport.handle_async_request(
                self._limiter.probe_request(call)
            )
            try:
                await response.aread()
            finally:
                await response.aclose()
        except httpx.HTTPError:
            return
        await offload_async(self._limiter.probed, call, response)

    async def _aclose_own(self) -> None:
        await offload_async(self._limiter.close)
