"""The rate-limit layer, innermost. Written once, async: ``.ci/unasync.py`` generates the
sync twin, ``_sync_ratelimit.py`` (``make lint`` checks it is current). Strictly private."""

from __future__ import annotations

from functools import partial

import httpx

from .._flight import aoffload, aoffload_taking
from .._info import SPENT, Route, Spent, route_of, with_spent
from .._state._async_waitroom import AsyncWaitRoom
from .._state._books import Ticket
from ..exceptions import QuotaflowError
from ._async_layer import AsyncLayer
from ._attempts import Tally
from ._body import aread_body
from ._limiter import Limiter
from ._probe import probe_request
from ._route import upstream_request

# What an unprofiled request's answer says of upstream: it went there, for nothing.
FREE = Spent()


class AsyncRateLimitTransport(AsyncLayer):
    """Innermost layer: only real upstream calls spend rate and quota; retries and the
    circuit breaker live here, so every attempt is limited and counted. State I/O runs
    off the event loop (in the sync twin, in line). What it took goes up as a ``Spent``,
    on the answer or on the error. Strictly private."""

    def __init__(
        self,
        next_transport: httpx.AsyncBaseTransport,
        limiter: Limiter,
        wait_rooms: dict[str, AsyncWaitRoom],
    ) -> None:
        self.next_transport = next_transport
        self._limiter = limiter
        self._wait_rooms = wait_rooms

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        route = route_of(request)
        if route is None or not self._limiter.profiled(route):
            response = await self.next_transport.handle_async_request(
                upstream_request(request, route)
            )
            if route is not None:
                response.extensions[SPENT] = FREE
            return response
        tally = Tally()
        try:
            response = await self._aretrying(route, request, tally)
        except Exception as exc:
            with_spent(exc, tally.spent())  # for the fallback: what it took, how long
            raise
        response.extensions[SPENT] = tally.spent()
        return response

    async def _aretrying(
        self, route: Route, request: httpx.Request, tally: Tally
    ) -> httpx.Response:
        limiter, attempt = self._limiter, 0
        while True:
            try:
                response = await self._aattempt(route, request, tally)
            except QuotaflowError:
                raise
            except httpx.TransportError as exc:
                delay = limiter.retry_delay(route, tally, request, attempt, error=exc)
                if delay is None:
                    raise
            else:
                delay = limiter.retry_delay(route, tally, request, attempt, response=response)
                if delay is None:
                    return response
                await response.aclose()
            await limiter.clock.asleep(delay)
            tally.waited += delay
            attempt += 1

    async def _aopen_circuit(self, route: Route) -> int:
        limiter = self._limiter
        if limiter.circuit_io(route):
            return await aoffload(limiter.open_circuit, route)
        return limiter.open_circuit(route)

    async def _aattempt(self, route: Route, request: httpx.Request, tally: Tally) -> httpx.Response:
        limiter = self._limiter
        probe = await self._aopen_circuit(route)
        ticket: Ticket | None = None
        try:
            limits = limiter.limits(route, request)
            if limits or (route.lease is not None and not tally.leased):
                ticket = await aoffload_taking(
                    limiter.before, partial(limiter.release, route), route, request, tally
                )
            if limits:
                try:
                    if limiter.probe.wanted(route):
                        await self._aprobe(route, tally)
                    if (room := self._wait_rooms.get(route.profile.name)) is not None:
                        await room.admit(route, tally)
                    # The check may have found the circuit opened by another process.
                    probe = probe or await self._aopen_circuit(route)
                except BaseException:
                    await aoffload(limiter.release, route, ticket)
                    raise
        except BaseException:
            if probe:  # the store learns that the probe is free again
                await aoffload(limiter.outcome, route, None, probe)
            raise
        try:
            response = await self.next_transport.handle_async_request(
                upstream_request(request, route)
            )
            if route.profile.reads_body:
                response = await aread_body(response, limiter.max_body)
                tally.buffered = response.is_stream_consumed
        except BaseException as exc:
            await aoffload(limiter.failed, route, tally, ticket, exc, probe)
            raise
        await aoffload(limiter.answered, route, tally, ticket, response, probe)
        return response

    async def _aprobe(self, route: Route, tally: Tally) -> None:
        """The free probe (``ApiProfile.probe``) for a lost ledger; never fails the
        request, whose own answer syncs the ledger too."""
        try:
            response = await self.next_transport.handle_async_request(probe_request(route))
            try:
                await response.aread()
            finally:
                await response.aclose()
        except httpx.HTTPError:
            return
        settled = await aoffload(self._limiter.probe.answered, route, response)
        if settled is not None:
            tally.remaining = settled.remaining

    async def _aclose_own(self) -> None:
        await aoffload(self._limiter.close)
