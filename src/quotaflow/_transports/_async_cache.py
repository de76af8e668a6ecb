"""The caching layer. Written once, async: ``.ci/unasync.py`` generates the sync twin,
``_sync_cache.py`` (``make lint`` checks it is current). Strictly private."""

from __future__ import annotations

import hishel
import httpx
from hishel.httpx import AsyncCacheTransport

from .._cold import ColdStore
from .._flight import (
    Flight,
    SingleFlight,
)
from .._hot import HotTier, entry_for
from .._info import CACHED, Cached, CacheStatus, Route, route_of
from .._known import EmptyKeys
from .._raw import Carrying
from ._async_layer import AsyncLayer
from ._async_lead import AsyncLeading
from ._async_policy import AsyncAround, AsyncPolicyTransport, athrough
from ._async_stored import AsyncStoredTiers
from ._body import decoded
from ._cache import (
    FRESH_IN_MEMORY,
    MEMORY,
    OPTIONS,
    STORAGE,
    AsyncTee,
    conditional,
    not_modified,
    taken_from_storage,
    worth_keeping,
)
from ._core import PASSED, SAFE_METHODS, FromBelow, Policy, hit
from ._route import redacted

CACHE_OFF = Cached(reason="the cache is off (cache=False)", forward="bypass")


class AsyncCachingTransport(AsyncLayer):
    """hot tier, then hishel's RFC 9111 cache plus the profile's rules. Strictly private.

    ``reader`` and ``cold``: see ``AsyncStoredTiers``; the cold store is read after the
    hot tier misses, before the warm tier, and written when a fresh answer is judged
    immutable.
    """

    def __init__(
        self,
        next_transport: httpx.AsyncBaseTransport,
        storage: hishel.AsyncBaseStorage,
        policy: Policy,
        hot: HotTier,
        flights: SingleFlight,
        enabled: bool = True,
        reader: hishel.BaseStorage | None = None,
        cold: ColdStore | None = None,
        known: EmptyKeys | None = None,
    ) -> None:
        self.next_transport = next_transport
        self._stored = AsyncStoredTiers(storage, hot, policy.clock, policy.max_body, reader, cold)
        self._cold = cold
        self._hot = hot
        self._flights = flights
        self._clock = policy.clock
        self._max_body = policy.max_body
        self._rules = policy.rules
        self._enabled = enabled
        # Keys known to hold nothing in storage (``_known.py``; shared with the storage
        # and the fallback layer): their requests skip the warm read.
        self._known = known = known if known is not None else EmptyKeys()
        policed = AsyncPolicyTransport(next_transport, storage, policy, known)
        self._around = AsyncAround(policed, known, flights, policy.max_body)
        # Each answer hishel receives carries its header pairs as sent (``_raw``).
        self._hishel = AsyncCacheTransport(Carrying(policed), storage=storage, rfc=OPTIONS)
        self._leading = AsyncLeading(flights, policy.clock, self._stored, self._athrough_hishel)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        route = route_of(request)
        if not self._enabled:  # cache = false: straight through
            if route is None:
                return await self.next_transport.handle_async_request(request)
            response = await self.next_transport.handle_async_request(redacted(route, request))
            response.extensions[CACHED] = CACHE_OFF
            return response
        if route is None:
            return await self._hishel.handle_async_request(request)
        now = self._clock.time()
        hot = route.hot
        if hot and (entry := self._hot.get(route.key, now)) is not None:
            response = entry.response(now)
            response.extensions[CACHED] = hit(entry.ttl, MEMORY, FRESH_IN_MEMORY, True)
            return response
        if (
            hot
            and route.key not in self._known
            and (found := await self._stored.aread(route, request, now)) is not None
        ):
            return found
        # Below this point, hishel and its storage included, only the redacted copy.
        return await self._afetch(route, redacted(route, request), now)

    async def _afetch(self, route: Route, request: httpx.Request, now: float) -> httpx.Response:
        """Not in memory nor fresh in storage: single flight, then hishel once."""
        if request.method not in SAFE_METHODS:
            self._hot.discard(route.key)  # hishel invalidates the stored entry too
            if route.key in self._known:  # nothing to invalidate: hishel would do nothing
                policed = self._around.policed
                response = (
                    await athrough(policed, route, request, now, self._max_body, "method", PASSED)
                )[0]
            else:
                response = (await self._athrough_hishel(route, request, now, "method"))[0]
            if response.status_code < 400:  # RFC 9111 §4.4: hishel invalidated the key
                self._known.emptied(route.key)
            return response
        if conditional(request):
            return await self._aconditional(route, request, now)
        rule = self._rules.match(request.url)
        if rule is not None and rule.ttl is None:
            response = await self.next_transport.handle_async_request(request)
            reason = f"never stored: the URL rule {rule.pattern!r} says no-store"
            response.extensions[CACHED] = Cached(reason=reason, forward="bypass")
            return response
        if self._around.applies(route):
            return await self._around.afetch(route, request, now)  # an answer nobody counts
        leading: Flight | None = None
        try:
            if request.method == "GET" and not self._flights.unstored(route.key):
                flight, leads = self._flights.join(route.key, asynchronous=True)
                if leads:
                    leading = flight
                elif (found := await self._leading.afollow(route, request, flight)) is not None:
                    return found  # a follower: the leader's answer, read from storage
            if leading is None:
                response, below = await self._athrough_hishel(route, request, now)
            else:
                led = await self._leading.alead(route, request, now, leading)
                if isinstance(led, httpx.Response):  # another process's, from storage
                    await self._leading.arelease(leading, None)
                    return led
                response, below = led
        except BaseException as exc:
            await self._leading.arelease(leading, exc)
            raise
        return await self._ahand_on(route, request, response, below, leading)

    async def _athrough_hishel(
        self, route: Route, request: httpx.Request, now: float, forward: str | None = None
    ) -> tuple[httpx.Response, FromBelow]:
        return await athrough(self._hishel, route, request, now, self._max_body, forward)

    async def _ahand_on(
        self,
        route: Route,
        request: httpx.Request,
        response: httpx.Response,
        below: FromBelow,
        leading: Flight | None,
    ) -> httpx.Response:
        """hishel's answer to a GET, on its way to the caller: kept in memory (and cold)
        as it streams, the flight landing when it ends."""
        cached: Cached = response.extensions[CACHED]
        hot = route.hot
        self._flights.stored(route.key, cached.stored)
        if cached.cache is CacheStatus.MISS:
            self._hot.discard(route.key)  # a newer answer (a forced refresh) replaces it
        cold = self._cold if below.keep_for is not None else None
        cost = below.spent.cost if below.spent is not None else 0
        if leading is not None and not taken_from_storage(response, self._hot, self._clock.time()):
            # Stored, but no waiter elsewhere can take it from storage (revalidated before
            # each use, varying, large...): give the lease back once stored, not landed.
            leading.landed = False
        if below.spent is not None and below.spent.buffered:
            return await self._abuffered(route, request, response, below, leading)
        keep = worth_keeping(response, self._hot) if hot else 0
        if not cached.stored and leading is not None:
            # Nothing will be stored to wait for (an event stream, no-store, no
            # freshness...): the followers go upstream now, side by side (a landed lease
            # too is given back).
            leading.landed = False
            await self._leading.arelease(leading, None)
            leading = None
        if leading is None and not keep and cold is None:
            return response
        if leading is not None:
            self._flights.streaming(leading)

        async def done(body: bytes | None) -> None:
            # The body was read to the end (so hishel has stored it) or given up on:
            # keep it in memory if it fits, and let the followers look again (even if
            # the cold store fails: hishel has stored it, and they would wait forever).
            if body is None and leading is not None:
                leading.landed = False  # not stored: give the lease back
            try:
                if body is not None and keep and len(body) <= keep:
                    entry = entry_for(response, body, self._clock.time())
                    if entry is not None:
                        self._hot.put(route.key, entry)
                if body is not None and below.keep_for is not None:
                    await self._stored.akeep_cold(
                        route, request, response, body, below.keep_for, cost
                    )
            finally:
                await self._leading.arelease(leading, None)

        # The answer streams to the caller as it arrives; the flight lands when it ends.
        tee = max(keep, min(cold.max_bytes, self._max_body)) if cold is not None else keep
        response.stream = AsyncTee(response.stream, tee, done)  # type: ignore[arg-type]
        return response

    async def _abuffered(
        self,
        route: Route,
        request: httpx.Request,
        response: httpx.Response,
        below: FromBelow,
        leading: Flight | None,
    ) -> httpx.Response:
        """The profile's rules read the body (``reads_body``): it is in memory already.
        Read it here too, so that events carry it; the fallback hands it on unread."""
        chunks = []
        try:  # the flight lands whatever happens, a failing cold store included
            async for chunk in response.aiter_raw():
                chunks.append(chunk)
            raw = b"".join(chunks)
            read = decoded(response, raw, self._max_body)
            if route.hot and worth_keeping(read, self._hot) >= len(raw):
                entry = entry_for(read, raw, self._clock.time())
                if entry is not None:
                    self._hot.put(route.key, entry)
            if self._cold is not None and below.keep_for is not None:
                cost = below.spent.cost if below.spent is not None else 0
                await self._stored.akeep_cold(route, request, read, raw, below.keep_for, cost)
        except BaseException as exc:
            await self._leading.arelease(leading, exc)
            raise
        await self._leading.arelease(leading, None)
        return read

    async def _aconditional(
        self, route: Route, request: httpx.Request, now: float
    ) -> httpx.Response:
        """The caller's own conditional request (If-None-Match, If-Modified-Since): a 304
        from a fresh stored answer whose validator matches (RFC 9111 §4.3.2), else the
        origin's own answer, passed on as it is (a 304 included) and not stored."""
        entries = await self._stored.storage.get_entries(route.key)
        answer = not_modified(entries, request, route.resource, now)
        if answer is not None:
            reason = "304 from a fresh stored answer: the caller's validator matched"
            answer.response.extensions[CACHED] = hit(answer.ttl, STORAGE, reason)
            return answer.response
        response = await self.next_transport.handle_async_request(request)
        reason = "the caller's conditional request went to the origin, unstored"
        response.extensions[CACHED] = Cached(reason=reason)
        return response

    async def _aclose_own(self) -> None:
        await self._stored.aclose()
