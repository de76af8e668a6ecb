"""The caching layer's policy half, between hishel and the rate-limit layer: the
profile's rules on what comes back from upstream. Written once, async:
``.ci/unasync.py`` generates the sync twin, ``_sync_policy.py``. Strictly private."""

from __future__ import annotations

import attrs
import hishel
import httpx

from .._flight import SingleFlight
from .._info import CACHED, SPENT, Cached, Route, route_of, spent_of
from .._known import EmptyKeys
from .._profiles import DEFAULT_PROFILE
from .._raw import restore
from .._retention import FOUND_NOTHING
from ._body import aread_body
from ._cache import ERROR_BODY, conditional
from ._core import BELOW, NEXT_STORED, FromBelow, Policy, UpstreamFailed, outcome, worth_storing


class AsyncPolicyTransport(httpx.AsyncBaseTransport):
    """Below hishel: judges each fresh answer (its lifetime, a failure, what it replaces)
    and leaves what it decided for the caching layer's top half (``FromBelow``)."""

    def __init__(
        self,
        next_transport: httpx.AsyncBaseTransport,
        storage: hishel.AsyncBaseStorage,
        policy: Policy,
        known: EmptyKeys,
    ) -> None:
        self.next_transport = next_transport
        self._storage = storage
        self._policy = policy
        self._known = known

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        route = route_of(request)
        below = request.extensions.get(BELOW)
        if isinstance(below, FromBelow) and below.forward is None:
            # hishel forwards a request with validators only to revalidate a stored one.
            below.forward = "stale" if conditional(request) else "miss"
        response = await self.next_transport.handle_async_request(request)
        spent = spent_of(response)
        verdict = spent.verdict if spent is not None else "ok"
        if self._policy.failed(route, response, verdict):
            # The fallback and any followers keep a copy of an error body (if small).
            response = await aread_body(response, ERROR_BODY)
        judged = self._policy.judge(route, request, response, verdict)
        if judged.replaces and route is not None:
            # The new answer replaces the old ones, so a hit never unpacks a pile of them
            # (none if hishel's lookup of this request found none: ``FOUND_NOTHING``).
            looked = FOUND_NOTHING.get() == route.key
            entries = [] if looked else await self._storage.get_entries(route.key)
            if not entries and isinstance(below, FromBelow) and below.forward == "miss":
                below.forward = "uri-miss"  # nothing was stored under the URI
            for entry in entries:
                await self._storage.remove_entry(entry.id)
            self._known.emptied(route.key)  # until an answer is stored under it
        if isinstance(below, FromBelow):
            below.spent, below.judged = spent, judged
            if route is not None and route.profile.immutable is not None:
                below.keep_for = self._policy.immutable(route, request, response)
        return response

    async def aclose(self) -> None:
        await self.next_transport.aclose()


async def athrough(
    transport: httpx.AsyncBaseTransport,
    route: Route,
    request: httpx.Request,
    now: float,
    max_body: int,
    forward: str | None = None,
    caching: object = None,
) -> tuple[httpx.Response, FromBelow]:
    """Through ``transport`` once (hishel over the policy half, or the policy half
    alone): its answer carries what the cache did (``Cached``) and what upstream took
    (``Spent``); so does a failure it passes on (``UpstreamFailed``). ``caching``:
    hishel's status when ``transport`` is the policy half alone (see ``outcome``)."""
    below = FromBelow(forward=forward)
    FOUND_NOTHING.set(None)  # hishel's lookup below sets it, for the policy half
    request.extensions["caching"] = {"key": route.key}
    request.extensions[BELOW] = below
    try:
        response = await transport.handle_async_request(request)
    except UpstreamFailed as failed:
        failed.response.extensions[CACHED] = Cached(forward=below.forward)
        raise
    restore(response)  # hishel's answer: the header pairs as sent
    spent = below.spent
    verdict = spent.verdict if spent is not None else None
    cached = outcome(route, response, below.judged, verdict, max_body, now, below.forward, caching)
    response.extensions[CACHED] = cached
    if spent is not None:  # hishel drops the extensions of a 304 it revalidated with
        response.extensions[SPENT] = spent
    return response, below


class AsyncAround:
    """GETs that go around hishel (``_known.py``): to a URL no profile matches, whose
    key is known to hold nothing and whose last answer was never reused. No lookup, no
    store, no flight: the policy half alone. Should this answer be worth storing after
    all, the next request goes through hishel again and stores its own (an unprofiled
    URL: the extra call costs no quota)."""

    def __init__(
        self,
        policed: AsyncPolicyTransport,
        known: EmptyKeys,
        flights: SingleFlight,
        max_body: int,
    ) -> None:
        self.policed = policed
        self._known = known
        self._flights = flights
        self._max_body = max_body

    def applies(self, route: Route) -> bool:
        return (
            route.hot
            and route.profile is DEFAULT_PROFILE
            and route.key in self._known
            and self._flights.unstored(route.key)
        )

    async def afetch(self, route: Route, request: httpx.Request, now: float) -> httpx.Response:
        response, _ = await athrough(self.policed, route, request, now, self._max_body)
        if worth_storing(route.profile, response.headers, now):
            self._flights.stored(route.key, True)  # the next request goes through hishel
            cached = response.extensions[CACHED]
            response.extensions[CACHED] = attrs.evolve(cached, reason=NEXT_STORED)
        return response
