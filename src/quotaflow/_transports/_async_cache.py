"""The caching layer. Written once, async: ``.ci/unasync.py`` generates the sync twin,
``_sync_cache.py`` (``make lint`` checks it is current). Strictly private."""

from __future__ import annotations

import hishel
import httpx
from hishel.httpx import AsyncCacheTransport

from .._clock import Clock
from .._cold import COLD, ColdEntry, ColdStore, cold_keep, cold_lookup
from .._flight import (
    LEASE_POLL,
    LEASE_TTL,
    Gate,
    follower_error,
    offload_async,
    shielded_async,
    wait_flight_async,
    wait_limit,
)
from .._hot import HotEntry, HotTier, entry_for
from .._info import CacheStatus, Call
from .._known import EmptyKeys
from .._profiles import DEFAULT_PROFILE
from .._retention import is_event_stream
from ._body import aread_body, decoded
from ._cache import (
    ERROR_BODY,
    FRESH_IN_MEMORY,
    FRESH_IN_STORAGE,
    KEPT_COLD,
    MEMORY,
    NOT_COLD_FOR,
    OPTIONS,
    STORAGE,
    AsyncTee,
    conditional,
    look_up,
    not_modified,
    read_fresh_async,
    worth_keeping,
)
from ._core import SAFE_METHODS, Policy, outcome, reused
from ._layer import AsyncLayer
from ._route import call_of, redacted


class _AsyncPolicyTransport(httpx.AsyncBaseTransport):
    """Between hishel and the limiter: the profile's rules on what comes back."""

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
        call = call_of(request)
        if call is not None and call.forward is None:
            # hishel forwards a request with validators only to revalidate a stored one.
            call.forward = "stale" if conditional(request) else "miss"
        response = await self.next_transport.handle_async_request(request)
        if self._policy.failed(call, response):
            # The fallback and any followers keep a copy of an error body (if small).
            response = await aread_body(response, ERROR_BODY)
        if self._policy.judge(call, request, response) and call is not None:
            # The new answer replaces the old ones, so a hit never unpacks a pile of them.
            entries = await self._storage.get_entries(call.key)
            if not entries and call.forward == "miss":
                call.forward = "uri-miss"  # nothing was stored under the URI
            for entry in entries:
                await self._storage.remove_entry(entry.id)
            self._known.emptied(call.key)  # until an answer is stored under it
        if call is not None and call.profile.immutable is not None:
            call.keep_for = self._policy.immutable(call, request, response)
        return response

    async def aclose(self) -> None:
        await self.next_transport.aclose()


class AsyncCachingTransport(AsyncLayer):
    """hot tier, then hishel's RFC 9111 cache plus the profile's rules. Strictly private.

    ``reader``: a blocking storage over the same entries; given, a fresh answer is read
    with it in one worker-thread hop (hishel's async SQLite storage hops per statement).
    ``cold``: the cold store (``_cold.py``) of answers the profile says never change:
    read after the hot tier misses, before the warm tier; written when a fresh answer
    is judged immutable.
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
        cold: ColdStore | None = None,
        known: EmptyKeys | None = None,
    ) -> None:
        self.next_transport = next_transport
        self._storage = storage
        self._reader = reader
        self._cold = cold
        # Keys just looked for in the cold store and not there (until when): a profile
        # keeping a few answers cold costs its other hits no cold lookup each.
        self._not_cold: dict[str, float] = {}
        self._hot = hot
        self._gate = gate
        self._clock = policy.clock
        self._max_body = policy.max_body
        self._rules = policy.rules
        self._enabled = enabled
        # Keys known to hold nothing in storage (``_known.py``; shared with the storage
        # and the fallback layer): their requests skip the warm read.
        self._known = known = known if known is not None else EmptyKeys()
        self._policed = _AsyncPolicyTransport(next_transport, storage, policy, known)
        self._hishel = AsyncCacheTransport(
            self._policed,
            storage=storage,
            rfc=OPTIONS,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        call = call_of(request)
        if not self._enabled:  # cache = false: straight through
            if call is None:
                return await self.next_transport.handle_async_request(request)
            call.reason, call.forward = "the cache is off (cache=False)", "bypass"
            return await self.next_transport.handle_async_request(redacted(call, request))
        if call is None:
            return await self._hishel.handle_async_request(request)
        now = self._clock.time()
        hot = call.hot
        if hot and (entry := self._hot.get(call.key, now)) is not None:
            call.cache, call.ttl, call.tier = CacheStatus.HIT, entry.ttl, MEMORY
            call.stored, call.reason, call.stamped = True, FRESH_IN_MEMORY, True
            return entry.response(now)
        if (
            hot
            and call.key not in self._known
            and (found := await self._aread_stored(call, request, now)) is not None
        ):
            return found
        # Below this point, hishel and its storage included, only the redacted copy.
        return await self._afetch(call, redacted(call, request), now)

    async def _afetch(self, call: Call, request: httpx.Request, now: float) -> httpx.Response:
        """Not in memory nor fresh in storage: single flight, then hishel once."""
        if request.method not in SAFE_METHODS:
            call.forward = "method"
            request.extensions["caching"] = {"key": call.key}
            self._hot.discard(call.key)  # hishel invalidates the stored entry too
            response = await self._hishel.handle_async_request(request)
            if response.status_code < 400:  # RFC 9111 §4.4: hishel invalidated the key
                self._known.emptied(call.key)
            outcome(call, response, self._max_body, now)
            return response
        if conditional(request):
            return await self._conditional(call, request, now)
        rule = self._rules.match(request.url)
        if rule is not None and rule.ttl is None:
            call.reason = f"never stored: the URL rule {rule.pattern!r} says no-store"
            call.forward = "bypass"
            return await self.next_transport.handle_async_request(request)
        if call.profile is DEFAULT_PROFILE and self._nothing_to_keep(call):
            return await self._around(call, request, now)  # an answer nobody counts
        request.extensions["caching"] = {"key": call.key}
        try:
            if request.method == "GET" and (found := await self._atake_turn(call, request)):
                return found  # a follower: the leader's answer, read from storage
            response = await self._hishel.handle_async_request(request)
            outcome(call, response, self._max_body, now)
        except BaseException as exc:
            await self._land(call, exc)
            raise
        return await self._ahand_on(call, request, response)

    async def _ahand_on(
        self, call: Call, request: httpx.Request, response: httpx.Response
    ) -> httpx.Response:
        """hishel's answer to a GET, on its way to the caller: kept in memory (and cold)
        as it streams, the flight landing when it ends."""
        hot = call.hot
        self._gate.stored(call.key, call.stored)
        if call.cache is CacheStatus.MISS:
            self._hot.discard(call.key)  # a newer answer (a forced refresh) replaces it
        cold = self._cold if call.keep_for is not None else None
        if call.buffered:
            return await self._buffered(call, request, response, hot, cold)
        keep = worth_keeping(response, self._hot) if hot else 0
        if not call.stored:
            # Nothing will be stored to wait for (an event stream, no-store, no
            # freshness...): the followers go upstream now, side by side.
            await self._land(call, None)
        if call.flight is None and not keep and cold is None:
            return response
        self._gate.streaming(call)

        async def done(body: bytes | None) -> None:
            # The body was read to the end (so hishel has stored it) or given up on:
            # keep it in memory if it fits, and let the followers look again.
            if body is not None and keep and len(body) <= keep:
                entry = entry_for(response, body, self._clock.time())
                if entry is not None:
                    self._hot.put(call.key, entry)
            if body is not None and cold is not None:
                await self._keep_cold(cold, call, request, response, body)
            await self._land(call, None)

        # The answer streams to the caller as it arrives; the flight lands when it ends.
        tee = max(keep, min(cold.max_bytes, self._max_body)) if cold is not None else keep
        response.stream = AsyncTee(response.stream, tee, done)  # type: ignore[arg-type]
        return response

    def _nothing_to_keep(self, call: Call) -> bool:
        return call.hot and call.key in self._known and self._gate.unstored(call.key)

    async def _around(self, call: Call, request: httpx.Request, now: float) -> httpx.Response:
        """Nothing is stored under the key and its last answer was never reused: no
        lookup, no store, no flight (``_known.py``). Should this answer be worth
        storing after all, the next request goes through hishel again and stores its
        own (an unprofiled URL: the extra call costs no quota)."""
        response = await self._policed.handle_async_request(request)
        headers = response.headers
        if (
            reused(call, response, now)
            and "no-store" not in headers.get("cache-control", "").lower()
            and not is_event_stream(headers.get("content-type"))
        ):
            self._gate.stored(call.key, True)
            call.reason = "not stored: the last answer here was never reused; the next is"
        return response

    async def _atake_turn(self, call: Call, request: httpx.Request) -> httpx.Response | None:
        """Single flight, before hishel runs (once). Return the answer a leader in this
        process fetched and stored meanwhile (read with the one warm read), or None to
        go on to hishel: as the leader (its lookup, made holding the lease, sees what
        another process stored meanwhile), after another process's lease was let go,
        or on its own (a leader too slow, an answer nobody stores, a refused leader)."""
        gate = self._gate
        if gate.unstored(call.key):
            return None  # the last answer was not stored: nothing to wait for
        flight = gate.join(call, asynchronous=True)
        if flight is not None:
            if not await wait_flight_async(flight, wait_limit(request)):
                return None  # as without quotaflow: this request fetches its own answer
            if flight.error is not None and (error := follower_error(flight, request)):
                raise error
            return await self._aread_after_flight(call, request)
        assert call.flight is not None
        if await offload_async(gate.lease, call.flight):
            return None  # the leader: hishel's lookup, under the lease, looks again
        clock: Clock = self._clock
        limit = wait_limit(request) or LEASE_TTL
        waited = 0.0
        while await offload_async(gate.leased_elsewhere, call.key):
            if waited >= limit:
                return None  # the other process is slow: fetch for ourselves, leading
            await clock.asleep(LEASE_POLL)
            waited += LEASE_POLL
        return None  # the other process landed: hishel's lookup finds its answer

    async def _aread_after_flight(
        self, call: Call, request: httpx.Request
    ) -> httpx.Response | None:
        """A follower's one warm read of what its leader stored (None: let hishel serve
        it, e.g. a body too big for memory, or the leader's answer was not stored)."""
        if not call.hot:
            return None
        found = await self._aread_stored(call, request, self._clock.time())
        if found is not None:
            call.collapsed = True
        return found

    async def _aread_stored(
        self, call: Call, request: httpx.Request, now: float
    ) -> httpx.Response | None:
        """The warm read: a kept (cold) or fresh stored answer, also kept in memory."""
        kept, entry = await self._stored(call, request, now)
        if kept is not None:
            response = kept.response(now)
            if (found := entry_for(response, kept.body, now)) is not None:
                self._hot.put(call.key, found)
            call.cache, call.ttl, call.tier = CacheStatus.HIT, kept.ttl(now), COLD
            call.stored, call.reason = True, KEPT_COLD
            return response
        if entry is None:
            return None
        self._hot.put(call.key, entry)
        call.cache, call.ttl, call.tier = CacheStatus.HIT, entry.ttl, STORAGE
        call.stored, call.reason, call.stamped = True, FRESH_IN_STORAGE, True
        return entry.response(now)

    async def _keep_cold(
        self,
        cold: ColdStore,
        call: Call,
        request: httpx.Request,
        response: httpx.Response,
        raw: bytes,
    ) -> None:
        """Keep an answer the profile judged immutable in the cold store, with the
        snapshot window it covers (the rule reads it decoded, as the caller would)."""
        assert call.keep_for is not None
        try:
            read = decoded(response, raw, self._max_body)
        except httpx.DecodingError:
            return  # a body that does not decode is not worth keeping for good
        if not read.is_stream_consumed:
            return  # it inflates past max_body: not kept
        now = self._clock.time()
        await offload_async(cold_keep, cold, call, request, read, raw, call.keep_for, now)
        self._not_cold.pop(call.key, None)

    async def _buffered(
        self,
        call: Call,
        request: httpx.Request,
        response: httpx.Response,
        hot: bool,
        cold: ColdStore | None,
    ) -> httpx.Response:
        """The profile's rules read the body (``reads_body``): it is in memory already.
        Read it here too, so that events carry it; the fallback hands it on unread."""
        chunks = []
        try:
            async for chunk in response.aiter_raw():
                chunks.append(chunk)
        except BaseException as exc:
            await self._land(call, exc)
            raise
        raw = b"".join(chunks)
        read = decoded(response, raw, self._max_body)
        if hot and worth_keeping(read, self._hot) >= len(raw):
            entry = entry_for(read, raw, self._clock.time())
            if entry is not None:
                self._hot.put(call.key, entry)
        if cold is not None:
            await self._keep_cold(cold, call, request, read, raw)
        await self._land(call, None)
        return read

    async def _conditional(self, call: Call, request: httpx.Request, now: float) -> httpx.Response:
        """The caller's own conditional request (If-None-Match, If-Modified-Since): a 304
        from a fresh stored answer whose validator matches (RFC 9111 §4.3.2), else the
        origin's own answer, passed on as it is (a 304 included) and not stored."""
        entries = await self._storage.get_entries(call.key)
        answer = not_modified(entries, request, call.resource, now)
        if answer is not None:
            call.cache, call.ttl, call.tier, call.stored = (
                CacheStatus.HIT,
                answer.ttl,
                STORAGE,
                True,
            )
            call.reason = "304 from a fresh stored answer: the caller's validator matched"
            return answer.response
        call.reason = "the caller's conditional request went to the origin, unstored"
        return await self.next_transport.handle_async_request(request)

    async def _land(self, call: Call, error: BaseException | None) -> None:
        """The leader is done: release its followers (and a shared lease), even when
        its own request was cancelled."""
        with shielded_async():
            if call.flight is not None and call.flight.token is not None:
                await offload_async(self._gate.land, call, error)
            else:
                self._gate.land(call, error)

    async def _stored(
        self, call: Call, request: httpx.Request, now: float
    ) -> tuple[ColdEntry | None, HotEntry | None]:
        """On a miss in memory: the cold store's answer (for a profile that keeps
        immutable ones), else a plain fresh stored one; in one worker-thread hop when
        the backend has a blocking reader."""
        limit = self._hot.max_entry
        cold = self._cold if call.profile.immutable is not None else None
        if cold is not None and self._not_cold.get(call.key, 0.0) > now:
            cold = None  # looked for a moment ago: not there
        inner = redacted(call, request) if cold is not None else request
        if self._reader is not None:
            kept, entry = await offload_async(look_up, cold, self._reader, call, inner, now, limit)
        else:
            kept = await offload_async(cold_lookup, cold, call, inner, now) if cold else None
            entry = None if kept else await read_fresh_async(self._storage, call, now, limit)
        if cold is not None and kept is None:
            if len(self._not_cold) >= 4096:
                self._not_cold.clear()
            self._not_cold[call.key] = now + NOT_COLD_FOR
        return kept, entry

    async def _aclose_own(self) -> None:
        try:
            await self._storage.close()
        finally:
            if self._reader is not None:
                self._reader.close()
            if self._cold is not None:
                self._cold.close()
