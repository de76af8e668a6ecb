"""Single flight in the caching layer: the leader's way through hishel with its
cross-process lease, its followers' wait. Written once, async: ``.ci/unasync.py``
generates the sync twin, ``_sync_lead.py``. Strictly private."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
import attrs
import httpx

from .._clock import Clock
from .._flight import (
    FOLLOW_POLL,
    LEASE_POLL,
    LEASE_TTL,
    Flight,
    SingleFlight,
    aoffload,
    follower_error,
    given_up,
    wait_limit,
)
from .._info import CACHED, ROUTE, Route
from .._profiles import DEFAULT_PROFILE
from .._state._backend import LeaseHeld
from ._async_stored import AsyncStoredTiers
from ._core import FromBelow

# hishel (over the policy half and the rate-limit layer) once: the caching layer's.
Through = Callable[[Route, httpx.Request, float], Awaitable[tuple[httpx.Response, FromBelow]]]


class AsyncLeading:
    """The leader's and the followers' parts of a single flight, for the caching layer."""

    def __init__(
        self, flights: SingleFlight, clock: Clock, stored: AsyncStoredTiers, through: Through
    ) -> None:
        self._flights = flights
        self._clock = clock
        self._stored = stored
        self._through = through

    async def alead(
        self, route: Route, request: httpx.Request, now: float, flight: Flight
    ) -> tuple[httpx.Response, FromBelow] | httpx.Response:
        """The leader in this process, through hishel once. The rate-limit layer takes
        the cross-process lease with its reservation (one round trip for both) and lands
        it with its settle (``_leasing``); an unprofiled route, which reserves nothing,
        takes it here. Should another process hold it, wait (within the request's own
        limit) for that process's answer: from storage, or through hishel again."""
        if route.profile is DEFAULT_PROFILE:
            if not await aoffload(self._flights.lease, flight):
                await self._await_elsewhere(route, request, look=False)
            return await self._through(route, request, now)
        leased = attrs.evolve(route, lease=self._flights.delegate(flight))
        request.extensions[ROUTE] = leased
        try:
            response, below = await self._through(leased, request, now)
        except LeaseHeld:
            flight.token = None  # never taken: nothing to give back
        else:
            flight.landed = below.spent is not None and below.spent.landed
            return response, below
        finally:
            request.extensions[ROUTE] = route
        if (found := await self._await_elsewhere(route, request)) is not None:
            return found
        return await self._through(route, request, self._clock.time())

    async def _await_elsewhere(
        self, route: Route, request: httpx.Request, *, look: bool = True
    ) -> httpx.Response | None:
        """Wait (within the request's own limit) while another process holds the lease;
        with ``look``, also for its answer to be fresh in storage (a landed lease lapses
        a while after: see ``_leasing``), which is then this request's, collapsed. Then
        hishel's lookup runs once, and finds what the other process stored."""
        clock: Clock = self._clock
        limit = wait_limit(request) or LEASE_TTL
        waited = 0.0
        while await aoffload(self._flights.leased_elsewhere, route.key):
            if waited >= limit:
                return None  # the other process is slow: fetch for ourselves, leading
            await clock.asleep(LEASE_POLL)
            waited += LEASE_POLL
            if look and route.hot:
                found = await self._stored.aread(route, request, clock.time())
                if found is not None:
                    cached = found.extensions[CACHED]
                    found.extensions[CACHED] = attrs.evolve(cached, collapsed=True)
                    return found
        return None

    @staticmethod
    async def _await_leader(flight: Flight, timeout: float | None) -> bool:
        """Wait for the leader to land; False if ``timeout`` passed first, or the
        leader's answer has been streaming to its caller too long (``given_up``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not await flight.await_done(FOLLOW_POLL):
            if given_up(flight, deadline):
                return False
        return True

    async def afollow(
        self, route: Route, request: httpx.Request, flight: Flight
    ) -> httpx.Response | None:
        """A follower: wait for the leader, then the one warm read of what it stored
        (None: go on to hishel: a leader too slow, a body too big for memory, an
        answer not stored, a refused leader)."""
        if not await self._await_leader(flight, wait_limit(request)):
            return None  # as without quotaflow: this request fetches its own answer
        if flight.error is not None and (error := follower_error(flight, request)):
            raise error
        if not route.hot:
            return None
        found = await self._stored.aread(route, request, self._clock.time())
        if found is not None:
            found.extensions[CACHED] = attrs.evolve(found.extensions[CACHED], collapsed=True)
        return found

    async def arelease(self, flight: Flight | None, error: BaseException | None) -> None:
        """The leader is done: release its followers (and a shared lease it still
        holds), even when its own request was cancelled."""
        if flight is None:
            return
        with anyio.CancelScope(shield=True):  # the caller's cancellation stops short
            if flight.gives_back(error):
                await aoffload(self._flights.release, flight, error)
            else:
                self._flights.release(flight, error)
