"""The caching layer's policy half, between hishel and the rate-limit layer: the
profile's rules on what comes back from upstream. Written once, async:
``.ci/unasync.py`` generates the sync twin, ``_sync_policy.py``. Strictly private."""

from __future__ import annotations

import hishel
import httpx

from .._info import route_of, spent_of
from ._body import aread_body
from ._cache import ERROR_BODY, conditional
from ._core import BELOW, FromBelow, Policy


class AsyncPolicyTransport(httpx.AsyncBaseTransport):
    """Below hishel: judges each fresh answer (its lifetime, a failure, what it replaces)
    and leaves what it decided for the caching layer's top half (``FromBelow``)."""

    def __init__(
        self,
        next_transport: httpx.AsyncBaseTransport,
        storage: hishel.AsyncBaseStorage,
        policy: Policy,
    ) -> None:
        self.next_transport = next_transport
        self._storage = storage
        self._policy = policy

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
            # The new answer replaces the old ones, so a hit never unpacks a pile of them.
            entries = await self._storage.get_entries(route.key)
            if not entries and isinstance(below, FromBelow) and below.forward == "miss":
                below.forward = "uri-miss"  # nothing was stored under the URI
            for entry in entries:
                await self._storage.remove_entry(entry.id)
        if isinstance(below, FromBelow):
            below.spent, below.judged = spent, judged
            if route is not None and route.profile.immutable is not None:
                below.keep_for = self._policy.immutable(route, request, response)
        return response

    async def aclose(self) -> None:
        await self.next_transport.aclose()
