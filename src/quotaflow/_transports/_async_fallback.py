"""The fallback layer, outermost: a stored answer, marked stale, when upstream fails.
Written once, async: ``.ci/unasync.py`` generates the sync twin, ``_sync_fallback.py``
(``make lint`` checks it is current). Strictly private."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable

import hishel
import httpx

from .._cache_status import forwarded, stamp
from .._flight import SingleFlight, aoffload
from .._info import NOT_CACHED, CacheStatus, Route, Spent, assemble, cached_of, spent_of
from .._known import EmptyKeys
from ._async_layer import AsyncLayer
from ._bare import Bare, stamp_bare
from ._body import unread
from ._cache import AsyncChunks
from ._core import Policy, UpstreamFailed
from ._limiter import Limiter
from ._report import log_answer, report
from ._route import Router
from ._stale import choose_stale, stale_eligible, stale_reason, stale_response

logger = logging.getLogger("quotaflow")


class AsyncFallbackTransport(AsyncLayer):
    """Outermost layer: a stored answer, marked stale, when upstream fails. Strictly private."""

    def __init__(
        self,
        next_transport: httpx.AsyncBaseTransport,
        router: Router,
        storage: hishel.AsyncBaseStorage,
        limiter: Limiter,
        serve_stale: bool = True,
        *,
        network: httpx.AsyncBaseTransport | None = None,
        known: EmptyKeys | None = None,
        policy: Policy | None = None,
        flights: SingleFlight | None = None,
    ) -> None:
        self.next_transport = next_transport
        # Requests that need no work go straight to ``network``, the innermost transport
        # (``_bare.py``): decided here, from the URL, before any Route is made.
        self._network = network
        self._bare = (
            Bare(router, known, limiter.emit, policy, flights)
            if known is not None and network is not None
            else None
        )
        self._serve_stale = serve_stale
        self._router = router
        self._storage = storage
        self._ledger = limiter.ledger
        self._clock = limiter.clock
        self._emit = limiter.emit
        self._costs: dict[str, int] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        bare, network = self._bare, self._network
        if bare is not None and network is not None:
            if (found := bare.get(request)) is not None:
                response = await network.handle_async_request(request)
                bare.answered(found, request, response)
                return response
            if (info := bare.info(request)) is not None:
                response = await network.handle_async_request(request)
                response.extensions["quotaflow"] = info
                return stamp_bare(response)
        route = self._router.route(request)
        if not self._emit.active:
            return unread(await self._aanswer(route, request))
        try:
            response = await self._aanswer(route, request)
        except Exception as exc:
            report(self._emit, route, request, None, exc, self._clock.time(), self._costs)
            raise
        report(self._emit, route, request, response, None, self._clock.time(), self._costs)
        return unread(response)

    async def _aanswer(self, route: Route, request: httpx.Request) -> httpx.Response:
        """The answer from below, with the ResponseInfo assembled from the route and
        the layers' records; a stale one if upstream failed and the profile allows."""
        try:
            response = await self.next_transport.handle_async_request(request)
        except UpstreamFailed as failed:
            spent = spent_of(failed.response)
            stale = await self._astale(route, request, failed.reason, spent)
            if stale is None:
                response = failed.response
            else:
                await failed.response.aclose()
                info = stale.extensions["quotaflow"]
                return stamp(stale, info, cached_of(failed.response), failed.status)
        except httpx.TransportError as exc:
            stale = await self._astale(route, request, stale_reason(exc), spent_of(exc))
            if stale is None:
                raise
            return stamp(stale, stale.extensions["quotaflow"], NOT_CACHED)
        cached = cached_of(response)
        # A hit never went upstream: no record of the rate-limit layer to look for.
        spent = None if cached.cache is CacheStatus.HIT else spent_of(response)
        remaining = spent.remaining if spent is not None else None
        if remaining is None:
            remaining = await self._aremaining(route)
        response.extensions["quotaflow"] = info = assemble(route, cached, spent, remaining)
        if not cached.stamped or cached.collapsed:  # a hot hit carries its member already
            stamp(response, info, cached, forwarded(cached, spent, response))
        if logger.isEnabledFor(logging.DEBUG):
            log_answer(request, route, info)
        return response

    async def _astale(
        self, route: Route, request: httpx.Request, reason: str, spent: Spent | None
    ) -> httpx.Response | None:
        if not self._serve_stale or not stale_eligible(route, request):
            return None
        entries = await self._storage.get_entries(route.key)
        choice = choose_stale(route, request, entries, self._clock.time())
        if choice is None:
            return None
        remaining = spent.remaining if spent is not None else None
        if remaining is None:
            remaining = await self._aremaining(route)
        stream = choice.entry.response.stream
        assert isinstance(stream, AsyncIterable)
        try:
            # Read now (stored bodies are at most max_body): another process replacing
            # the answer meanwhile must not break the caller's read half-way.
            chunks = []
            async for chunk in AsyncChunks(stream):
                chunks.append(chunk)
            body = b"".join(chunks)
        except RuntimeError:  # hishel: "deleted while it was being read"
            return None  # the stale answer is gone: the upstream failure stands
        answer = httpx.ByteStream(body)
        return stale_response(route, request, choice, answer, reason, spent, remaining)

    async def _aremaining(self, route: Route) -> int | None:
        ledger, profile, account = self._ledger, route.profile, route.account
        if ledger.needs_peek(profile, account):
            return await aoffload(ledger.known_remaining, profile, account)
        return ledger.known_remaining(profile, account)
