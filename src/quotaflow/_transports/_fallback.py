from __future__ import annotations

import anyio.to_thread
import hishel
import httpx

from .._info import Call
from ..exceptions import ConfigError
from ._core import (
    Limiter,
    Router,
    UpstreamFailed,
    choose_stale,
    report,
    stale_eligible,
    stale_reason,
    stale_response,
)


class FallbackTransport(httpx.BaseTransport):
    """Outermost layer: a stored answer, marked stale, when upstream fails. Strictly private."""

    def __init__(
        self,
        next_transport: httpx.BaseTransport,
        router: Router,
        storage: hishel.BaseStorage,
        limiter: Limiter,
        serve_stale: bool = True,
    ) -> None:
        self.next_transport = next_transport
        self._serve_stale = serve_stale
        self._router = router
        self._storage = storage
        self._ledger = limiter.ledger
        self._clock = limiter.clock
        self._emit = limiter.emit
        self._costs: dict[str, int] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        call = self._router.start(request)
        if not self._emit.active:
            return self._answer(call, request)
        try:
            response = self._answer(call, request)
        except Exception as exc:
            report(self._emit, call, request, None, exc, self._clock.time(), self._costs)
            raise
        report(self._emit, call, request, response, None, self._clock.time(), self._costs)
        return response

    def _answer(self, call: Call, request: httpx.Request) -> httpx.Response:
        try:
            response = self.next_transport.handle_request(request)
        except UpstreamFailed as failed:
            stale = self._stale(call, request, failed.reason)
            if stale is None:
                response = failed.response
            else:
                failed.response.close()
                return stale
        except ConfigError:
            raise
        except httpx.TransportError as exc:
            stale = self._stale(call, request, stale_reason(exc))
            if stale is None:
                raise
            return stale
        if call.remaining is None:
            call.remaining = self._ledger.known_remaining(call.profile)
        response.extensions["quotaflow"] = call.info()
        return response

    def _stale(self, call: Call, request: httpx.Request, reason: str) -> httpx.Response | None:
        if not self._serve_stale or not stale_eligible(call, request):
            return None
        entries = self._storage.get_entries(call.key)
        choice = choose_stale(call, request, entries, self._clock.time())
        if choice is None:
            return None
        if call.remaining is None:
            call.remaining = self._ledger.known_remaining(call.profile)
        stream = choice.entry.response.stream
        body = b"".join(stream) if stream is not None else b""  # type: ignore[arg-type]
        return stale_response(call, request, choice, body, reason)

    def close(self) -> None:
        self.next_transport.close()


class AsyncFallbackTransport(httpx.AsyncBaseTransport):
    """Async twin of :class:`FallbackTransport`."""

    def __init__(
        self,
        next_transport: httpx.AsyncBaseTransport,
        router: Router,
        storage: hishel.AsyncBaseStorage,
        limiter: Limiter,
        serve_stale: bool = True,
    ) -> None:
        self.next_transport = next_transport
        self._serve_stale = serve_stale
        self._router = router
        self._storage = storage
        self._ledger = limiter.ledger
        self._clock = limiter.clock
        self._emit = limiter.emit
        self._costs: dict[str, int] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        call = self._router.start(request)
        if not self._emit.active:
            return await self._answer(call, request)
        try:
            response = await self._answer(call, request)
        except Exception as exc:
            report(self._emit, call, request, None, exc, self._clock.time(), self._costs)
            raise
        report(self._emit, call, request, response, None, self._clock.time(), self._costs)
        return response

    async def _answer(self, call: Call, request: httpx.Request) -> httpx.Response:
        try:
            response = await self.next_transport.handle_async_request(request)
        except UpstreamFailed as failed:
            stale = await self._stale(call, request, failed.reason)
            if stale is None:
                response = failed.response
            else:
                await failed.response.aclose()
                return stale
        except ConfigError:
            raise
        except httpx.TransportError as exc:
            stale = await self._stale(call, request, stale_reason(exc))
            if stale is None:
                raise
            return stale
        if call.remaining is None:
            call.remaining = await self._remaining(call)
        response.extensions["quotaflow"] = call.info()
        return response

    async def _stale(
        self, call: Call, request: httpx.Request, reason: str
    ) -> httpx.Response | None:
        if not self._serve_stale or not stale_eligible(call, request):
            return None
        entries = await self._storage.get_entries(call.key)
        choice = choose_stale(call, request, entries, self._clock.time())
        if choice is None:
            return None
        if call.remaining is None:
            call.remaining = await self._remaining(call)
        body = b"".join([chunk async for chunk in choice.entry.response.stream])  # type: ignore[union-attr]
        return stale_response(call, request, choice, body, reason)

    async def _remaining(self, call: Call) -> int | None:
        if self._ledger.needs_peek(call.profile):
            return await anyio.to_thread.run_sync(self._ledger.known_remaining, call.profile)
        return self._ledger.known_remaining(call.profile)

    async def aclose(self) -> None:
        await self.next_transport.aclose()
