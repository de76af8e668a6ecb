"""The caching layer. Written once, async: ``.ci/unasync.py`` generates the sync twin,
``_sync_cache.py`` (``make lint`` checks it is current). Strictly private."""

from __future__ import annotations

import hishel
import httpx
from hishel.httpx import AsyncCacheTransport

from .._clock import Clock
from .._flight import (
    LEASE_POLL,
    LEASE_TTL,
    FromCache,
    Gate,
    follower_error,
    offload_async,
    wait_flight_async,
    wait_limit,
)
from .._hot import HotEntry, HotTier, entry_for
from .._info import CacheStatus, Call
from ._cache import OPTIONS, read_fresh, read_fresh_async, waited_too_long, worth_keeping
from ._core import SAFE_METHODS, Policy, call_of, outcome, redacted


class _AsyncPolicyTransport(httpx.AsyncBaseTransport):
    """Between hishel and the limiter: single flight, then the profile's rules."""

    def __init__(
        self,
        next_transport: httpx.AsyncBaseTransport,
        storage: hishel.AsyncBaseStorage,
        policy: Policy,
        gate: Gate,
    ) -> None:
        self.next_transport = next_transport
        self._storage = storage
        self._policy = policy
        self._gate = gate

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        call = call_of(request)
        if call is not None and request.method == "GET" and not call.retried:
            await self._board(call, request)
        response = await self.next_transport.handle_async_request(request)
        if self._policy.judge(call, request, response) and call is not None:
            # The new answer replaces the old ones, so a hit never unpacks a pile of them.
            for entry in await self._storage.get_entries(call.key):
                await self._storage.remove_entry(entry.id)
        return response

    async def _board(self, call: Call, request: httpx.Request) -> None:
        """Raise FromCache: to look again as the leader, or after waiting for another."""
        gate = self._gate
        flight = gate.join(call, asynchronous=True)
        if flight is not None:
            if not await wait_flight_async(flight, wait_limit(request)):
                raise waited_too_long(request)
            raise follower_error(flight, request) if flight.error else FromCache()
        assert call.flight is not None
        if await offload_async(gate.lease, call.flight):
            # Another process may have stored the answer between our cache lookup and
            # the lease: look once more, holding the lease (the retry skips this gate).
            raise FromCache()
        clock: Clock = self._policy.clock
        limit = wait_limit(request) or LEASE_TTL
        waited = 0.0
        while await offload_async(gate.leased_elsewhere, call.key):
            if waited >= limit:
                raise waited_too_long(request)
            await clock.asleep(LEASE_POLL)
            waited += LEASE_POLL
        raise FromCache()

    async def aclose(self) -> None:
        await self.next_transport.aclose()


class AsyncCachingTransport(httpx.AsyncBaseTransport):
    """hot tier, then hishel's RFC 9111 cache plus the profile's rules. Strictly private.

    ``reader``: a blocking storage over the same entries; given, a fresh answer is read
    with it in one worker-thread hop (hishel's async SQLite storage hops per statement).
    """

    def __init__(
        self,
        next_transport: httpx.AsyncBaseTransport,
        storage: hishel.AsyncBaseStorage,
        policy: Policy,
        hot: HotTier,
        gate: Gate,
        enabled: bool = True,
        reader: hishel.BaseStorage | None = None,
    ) -> None:
        self.next_transport = next_transport
        self._storage = storage
        self._reader = reader
        self._hot = hot
        self._gate = gate
        self._clock = policy.clock
        self._enabled = enabled
        self._hishel = AsyncCacheTransport(
            _AsyncPolicyTransport(next_transport, storage, policy, gate),
            storage=storage,
            rfc=OPTIONS,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        call = call_of(request)
        if not self._enabled:  # cache = false: straight through
            inner = request if call is None else redacted(call, request)
            return await self.next_transport.handle_async_request(inner)
        if call is None:
            return await self._hishel.handle_async_request(request)
        now = self._clock.time()
        hot = call.hot
        if hot and (entry := self._hot.get(call.resource, now)) is not None:
            call.cache, call.ttl = CacheStatus.HIT, entry.ttl
            return entry.response(now)
        if hot and (entry := await self._warm(call, now)) is not None:
            self._hot.put(call.resource, entry)
            call.cache, call.ttl = CacheStatus.HIT, entry.ttl
            return entry.response(now)
        # Below this point, hishel and its storage included, only the redacted copy.
        request = redacted(call, request)
        if request.method not in SAFE_METHODS:
            request.extensions["caching"] = {"key": call.key}
            self._hot.discard(call.resource)  # hishel invalidates the stored entry too
            response = await self._hishel.handle_async_request(request)
            outcome(call, response)
            return response
        request.extensions["caching"] = {"key": call.key}
        error: BaseException | None = None
        try:
            try:
                response = await self._hishel.handle_async_request(request)
            except FromCache:
                call.retried = True
                response = await self._hishel.handle_async_request(request)
            outcome(call, response)
            if call.flight is not None or (hot and worth_keeping(response, self._hot)):
                # Read now: the entry is stored once its body is, and followers wait for it.
                await response.aread()
                if hot and (entry := entry_for(response, now)) is not None:
                    self._hot.put(call.resource, entry)
            return response
        except BaseException as exc:
            error = exc
            raise
        finally:
            if call.flight is not None and call.flight.token is not None:
                await offload_async(self._gate.land, call, error)  # releases a shared lease
            else:
                self._gate.land(call, error)

    async def _warm(self, call: Call, now: float) -> HotEntry | None:
        if self._reader is not None:
            return await offload_async(read_fresh, self._reader, call, now)
        return await read_fresh_async(self._storage, call, now)

    async def aclose(self) -> None:
        await self._hishel.aclose()
        if self._reader is not None:
            self._reader.close()
