from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Iterable

import anyio
import anyio.to_thread
import hishel
import httpx
from hishel.httpx import AsyncCacheTransport, CacheTransport

from .._clock import Clock
from .._flight import LEASE_POLL, LEASE_TTL, FromCache, Gate, follower_error, wait_limit
from .._hot import HotEntry, HotTier, entry_for, fresh_stored, stored_entry
from .._info import CacheStatus, Call
from ._core import SAFE_METHODS, Policy, call_of, outcome, redacted

# A client-side cache is private (RFC 9111 §3.5): responses to authorised
# requests may be stored, since credentials never reach it anyway.
logger = logging.getLogger("quotaflow")

OPTIONS = hishel.CacheOptions(shared=False)


def _waited_too_long(request: httpx.Request) -> httpx.ReadTimeout:
    return httpx.ReadTimeout(
        "timed out waiting for a concurrent request for the same resource", request=request
    )


class _PolicyTransport(httpx.BaseTransport):
    """Between hishel and the limiter: single flight, then the profile's rules."""

    def __init__(
        self,
        next_transport: httpx.BaseTransport,
        storage: hishel.BaseStorage,
        policy: Policy,
        gate: Gate,
    ) -> None:
        self.next_transport = next_transport
        self._storage = storage
        self._policy = policy
        self._gate = gate

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        call = call_of(request)
        if call is not None and request.method == "GET" and not call.retried:
            self._board(call, request)
        response = self.next_transport.handle_request(request)
        if self._policy.judge(call, request, response) and call is not None:
            # The new answer replaces the old ones, so a hit never unpacks a pile of them.
            for entry in self._storage.get_entries(call.key):
                self._storage.remove_entry(entry.id)
        return response

    def _board(self, call: Call, request: httpx.Request) -> None:
        """Raise FromCache: to look again as the leader, or after waiting for another."""
        gate = self._gate
        flight = gate.join(call)
        if flight is not None:
            if not flight.done.wait(wait_limit(request)):
                raise _waited_too_long(request)
            raise follower_error(flight, request) if flight.error else FromCache()
        assert call.flight is not None
        if gate.lease(call.flight):
            # Another process may have stored the answer between our cache lookup and
            # the lease: look once more, holding the lease (the retry skips this gate).
            raise FromCache()
        clock: Clock = self._policy.clock
        limit = wait_limit(request) or LEASE_TTL
        waited = 0.0
        while gate.leased_elsewhere(call.key):
            if waited >= limit:
                raise _waited_too_long(request)
            clock.sleep(LEASE_POLL)
            waited += LEASE_POLL
        raise FromCache()

    def close(self) -> None:
        self.next_transport.close()


class CachingTransport(httpx.BaseTransport):
    """hot tier, then hishel's RFC 9111 cache plus the profile's rules. Strictly private."""

    def __init__(
        self,
        next_transport: httpx.BaseTransport,
        storage: hishel.BaseStorage,
        policy: Policy,
        hot: HotTier,
        gate: Gate,
        enabled: bool = True,
    ) -> None:
        self.next_transport = next_transport
        self._storage = storage
        self._hot = hot
        self._gate = gate
        self._clock = policy.clock
        self._enabled = enabled
        self._hishel = CacheTransport(
            _PolicyTransport(next_transport, storage, policy, gate), storage=storage, rfc=OPTIONS
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        call = call_of(request)
        if not self._enabled:  # cache = false: straight through
            inner = request if call is None else redacted(call, request)
            return self.next_transport.handle_request(inner)
        if call is None:
            return self._hishel.handle_request(request)
        now = self._clock.time()
        hot = call.hot
        if hot and (entry := self._hot.get(call.resource, now)) is not None:
            call.cache, call.ttl, call.served = CacheStatus.HIT, entry.ttl, entry
            return entry.response(now)
        if hot and (entry := self._warm(call, now)) is not None:
            self._hot.put(call.resource, entry)
            call.cache, call.ttl, call.served = CacheStatus.HIT, entry.ttl, entry
            return entry.response(now)
        # Below this point, hishel and its storage included, only the redacted copy.
        request = redacted(call, request)
        if request.method not in SAFE_METHODS:
            request.extensions["caching"] = {"key": call.key}
            self._hot.discard(call.resource)  # hishel invalidates the stored entry too
            response = self._hishel.handle_request(request)
            outcome(call, response)
            return response
        request.extensions["caching"] = {"key": call.key}
        error: BaseException | None = None
        try:
            try:
                response = self._hishel.handle_request(request)
            except FromCache:
                call.retried = True
                response = self._hishel.handle_request(request)
            outcome(call, response)
            if call.flight is not None or (hot and _worth_keeping(response, self._hot)):
                # Read now: the entry is stored once its body is, and followers wait for it.
                response.read()
                if hot and (entry := entry_for(response, now)) is not None:
                    self._hot.put(call.resource, entry)
            return response
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._gate.land(call, error)

    def _warm(self, call: Call, now: float) -> HotEntry | None:
        return read_fresh(self._storage, call, now)

    def close(self) -> None:
        self._hishel.close()


def read_fresh(storage: hishel.BaseStorage, call: Call, now: float) -> HotEntry | None:
    """A fresh answer read from storage without hishel's state machine: what hishel
    serves a plain GET (RFC 9111 §4) when one fresh 200 is stored, at a fraction
    of the cost. Anything else, errors included, is left to hishel."""
    try:
        entries = storage.get_entries(call.key)
        lifetime = fresh_stored(entries, call.resource, now)
        if lifetime is None:
            return None
        stream = entries[0].response.stream
        assert isinstance(stream, Iterable)
        return stored_entry(entries[0], b"".join(stream), lifetime)
    except Exception:
        logger.debug("quotaflow: reading %s from storage failed", call.key, exc_info=True)
        return None


def _worth_keeping(response: httpx.Response, hot: HotTier) -> bool:
    caching = response.extensions.get("caching")
    if not isinstance(caching, dict) or not (caching.get("stored") or caching.get("from_cache")):
        return False
    length = response.headers.get("content-length")
    return response.status_code == 200 and (
        length is None or (length.isdigit() and int(length) <= hot.max_bytes // 4)
    )


class _AsyncPolicyTransport(httpx.AsyncBaseTransport):
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
            for entry in await self._storage.get_entries(call.key):
                await self._storage.remove_entry(entry.id)
        return response

    async def _board(self, call: Call, request: httpx.Request) -> None:
        gate = self._gate
        flight = gate.join(call, asynchronous=True)
        if flight is not None:
            assert flight.adone is not None
            with anyio.move_on_after(wait_limit(request)) as scope:
                await flight.adone.wait()
            if scope.cancelled_caught:
                raise _waited_too_long(request)
            raise follower_error(flight, request) if flight.error else FromCache()
        assert call.flight is not None
        if await anyio.to_thread.run_sync(gate.lease, call.flight):
            raise FromCache()  # look once more, holding the lease
        clock: Clock = self._policy.clock
        limit = wait_limit(request) or LEASE_TTL
        waited = 0.0
        while await anyio.to_thread.run_sync(gate.leased_elsewhere, call.key):
            if waited >= limit:
                raise _waited_too_long(request)
            await clock.asleep(LEASE_POLL)
            waited += LEASE_POLL
        raise FromCache()

    async def aclose(self) -> None:
        await self.next_transport.aclose()


class AsyncCachingTransport(httpx.AsyncBaseTransport):
    """Async twin of :class:`CachingTransport`."""

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
        if not self._enabled:
            inner = request if call is None else redacted(call, request)
            return await self.next_transport.handle_async_request(inner)
        if call is None:
            return await self._hishel.handle_async_request(request)
        now = self._clock.time()
        hot = call.hot
        if hot and (entry := self._hot.get(call.resource, now)) is not None:
            call.cache, call.ttl, call.served = CacheStatus.HIT, entry.ttl, entry
            return entry.response(now)
        if hot and (entry := await self._warm(call, now)) is not None:
            self._hot.put(call.resource, entry)
            call.cache, call.ttl, call.served = CacheStatus.HIT, entry.ttl, entry
            return entry.response(now)
        # Below this point, hishel and its storage included, only the redacted copy.
        request = redacted(call, request)
        if request.method not in SAFE_METHODS:
            request.extensions["caching"] = {"key": call.key}
            self._hot.discard(call.resource)
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
            if call.flight is not None or (hot and _worth_keeping(response, self._hot)):
                await response.aread()
                if hot and (entry := entry_for(response, now)) is not None:
                    self._hot.put(call.resource, entry)
            return response
        except BaseException as exc:
            error = exc
            raise
        finally:
            if call.flight is not None and call.flight.token is not None:
                await anyio.to_thread.run_sync(self._gate.land, call, error)
            else:
                self._gate.land(call, error)

    async def _warm(self, call: Call, now: float) -> HotEntry | None:
        if self._reader is not None:
            return await anyio.to_thread.run_sync(read_fresh, self._reader, call, now)
        try:
            entries = await self._storage.get_entries(call.key)
            lifetime = fresh_stored(entries, call.resource, now)
            if lifetime is None:
                return None
            stream = entries[0].response.stream
            assert isinstance(stream, AsyncIterable)
            body = b"".join([chunk async for chunk in stream])
            return stored_entry(entries[0], body, lifetime)
        except Exception:
            logger.debug("quotaflow: reading %s from storage failed", call.key, exc_info=True)
            return None

    async def aclose(self) -> None:
        await self._hishel.aclose()
        if self._reader is not None:
            self._reader.close()
