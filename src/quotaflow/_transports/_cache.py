from __future__ import annotations

import hishel
import httpx
from hishel.httpx import AsyncCacheTransport, CacheTransport

from ._core import Policy, call_of, outcome

# A client-side cache is private (RFC 9111 §3.5): responses to authorised
# requests may be stored, since credentials never reach it anyway.
OPTIONS = hishel.CacheOptions(shared=False)


class _PolicyTransport(httpx.BaseTransport):
    """Between hishel and the limiter: the profile's rules for fresh answers."""

    def __init__(
        self, next_transport: httpx.BaseTransport, storage: hishel.BaseStorage, policy: Policy
    ) -> None:
        self.next_transport = next_transport
        self._storage = storage
        self._policy = policy

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.next_transport.handle_request(request)
        call = call_of(request)
        if self._policy.judge(call, request, response) and call is not None:
            # The new answer replaces the old ones, so a hit never unpacks a pile of them.
            for entry in self._storage.get_entries(call.key):
                self._storage.remove_entry(entry.id)
        return response

    def close(self) -> None:
        self.next_transport.close()


class CachingTransport(httpx.BaseTransport):
    """hishel's RFC 9111 cache plus the profile's freshness rules. Strictly private."""

    def __init__(
        self, next_transport: httpx.BaseTransport, storage: hishel.BaseStorage, policy: Policy
    ) -> None:
        self.next_transport = next_transport
        self._hishel = CacheTransport(
            _PolicyTransport(next_transport, storage, policy), storage=storage, rfc=OPTIONS
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        call = call_of(request)
        if call is not None:
            request.extensions["caching"] = {"key": call.key}
        response = self._hishel.handle_request(request)
        if call is not None:
            outcome(call, response)
        return response

    def close(self) -> None:
        self._hishel.close()


class _AsyncPolicyTransport(httpx.AsyncBaseTransport):
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
        response = await self.next_transport.handle_async_request(request)
        call = call_of(request)
        if self._policy.judge(call, request, response) and call is not None:
            for entry in await self._storage.get_entries(call.key):
                await self._storage.remove_entry(entry.id)
        return response

    async def aclose(self) -> None:
        await self.next_transport.aclose()


class AsyncCachingTransport(httpx.AsyncBaseTransport):
    """Async twin of :class:`CachingTransport`."""

    def __init__(
        self,
        next_transport: httpx.AsyncBaseTransport,
        storage: hishel.AsyncBaseStorage,
        policy: Policy,
    ) -> None:
        self.next_transport = next_transport
        self._hishel = AsyncCacheTransport(
            _AsyncPolicyTransport(next_transport, storage, policy), storage=storage, rfc=OPTIONS
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        call = call_of(request)
        if call is not None:
            request.extensions["caching"] = {"key": call.key}
        response = await self._hishel.handle_async_request(request)
        if call is not None:
            outcome(call, response)
        return response

    async def aclose(self) -> None:
        await self._hishel.aclose()
