"""The stored tiers under the hot one, for the caching layer: the warm read (the cold
store's answer, else a fresh stored one, without hishel's state machine) and keeping
answers cold. Written once, async: ``.ci/unasync.py`` generates the sync twin,
``_sync_stored.py``. Strictly private."""

from __future__ import annotations

import hishel
import httpx

from .._clock import Clock
from .._cold import COLD, ColdEntry, ColdStore, cold_keep, cold_lookup, nothing_kept
from .._flight import aoffload
from .._hot import HotEntry, HotTier, entry_for
from .._info import CACHED, Route
from .._shapes import FreshRows
from ._body import decoded
from ._cache import (
    FRESH_IN_STORAGE,
    KEPT_COLD,
    NOT_COLD_FOR,
    STORAGE,
    aread_fresh,
    look_up,
)
from ._core import hit
from ._route import redacted


def fresh_rows(storage: object) -> FreshRows | None:
    """The storage's own one-query read of a fresh answer (SQLite's, under the retaining
    wrapper), or None (Redis: hishel's entries are read and judged here)."""
    inner = getattr(storage, "storage", storage)
    return inner if callable(getattr(inner, "fresh", None)) else None  # type: ignore[return-value]


class AsyncStoredTiers:
    """The cold store and the warm storage, as the caching layer reads and fills them.

    ``reader``: a blocking storage over the same entries; given, a fresh answer is read
    with it in one worker-thread hop (hishel's async SQLite storage hops per statement),
    or with none at all when the reader can answer on the event loop without waiting
    (``FreshRows.peek``: SQLite in WAL mode reads a small row in microseconds, less
    than a hop costs).
    ``cold``: the cold store (``_cold.py``) of answers the profile says never change.
    """

    def __init__(
        self,
        storage: hishel.AsyncBaseStorage,
        hot: HotTier,
        clock: Clock,
        max_body: int,
        reader: hishel.BaseStorage | None = None,
        cold: ColdStore | None = None,
    ) -> None:
        self.storage = storage
        self.cold = cold
        self._reader = reader
        # The storage's own one-query read (SQLite), if it has one: the reader's for
        # the async stack (its storage is async), the storage's for the sync one.
        self._rows = fresh_rows(reader if reader is not None else storage)
        self._hot = hot
        self._clock = clock
        self._max_body = max_body
        # Keys just looked for in the cold store and not there (until when): a profile
        # keeping a few answers cold costs its other hits no cold lookup each.
        self._not_cold: dict[str, float] = {}

    async def aread(
        self, route: Route, request: httpx.Request, now: float
    ) -> httpx.Response | None:
        """The warm read: a kept (cold) or fresh stored answer, also kept in memory."""
        kept, entry = await self._alook(route, request, now)
        if kept is not None:
            response = kept.response(now)
            if (found := entry_for(response, kept.body, now)) is not None:
                self._hot.put(route.key, found)
            response.extensions[CACHED] = hit(kept.ttl(now), COLD, KEPT_COLD)
            return response
        if entry is None:
            return None
        self._hot.put(route.key, entry)
        response = entry.response(now)
        response.extensions[CACHED] = hit(entry.ttl, STORAGE, FRESH_IN_STORAGE, True)
        return response

    async def akeep_cold(
        self,
        route: Route,
        request: httpx.Request,
        response: httpx.Response,
        raw: bytes,
        keep_for: float,
        cost: int,
    ) -> None:
        """Keep an answer the profile judged immutable in the cold store, with the
        snapshot window it covers (the rule reads it decoded, as the caller would)."""
        assert self.cold is not None
        try:
            read = decoded(response, raw, self._max_body)
        except httpx.DecodingError:
            return  # a body that does not decode is not worth keeping for good
        if not read.is_stream_consumed:
            return  # it inflates past max_body: not kept
        now = self._clock.time()
        await aoffload(cold_keep, self.cold, route, request, read, raw, keep_for, now, cost)
        self._not_cold.pop(route.key, None)

    async def _alook(
        self, route: Route, request: httpx.Request, now: float
    ) -> tuple[ColdEntry | None, HotEntry | None]:
        """On a miss in memory: the cold store's answer (for a profile that keeps
        immutable ones), else a plain fresh stored one; in one worker-thread hop when
        the backend has a blocking reader."""
        limit = self._hot.max_entry
        cold = self.cold if route.profile.immutable is not None else None
        if cold is not None and self._not_cold.get(route.key, 0.0) > now:
            cold = None  # looked for a moment ago: not there
        inner = redacted(route, request) if cold is not None else request
        if cold is not None and nothing_kept(cold, route, inner):
            self._not_cold_for_now(route.key, now)
            cold = None  # surely not there, seen without a hop
        rows = self._rows
        if self._reader is not None:
            if cold is None and rows is not None:
                answered, entry = rows.peek(route.key, route.resource, now, limit)
                if answered:
                    return None, entry
            reader = self._reader
            kept, entry = await aoffload(look_up, cold, reader, route, inner, now, limit, rows)
        else:
            kept = await aoffload(cold_lookup, cold, route, inner, now) if cold else None
            entry = None if kept else await aread_fresh(self.storage, route, now, limit, rows)
        if cold is not None and kept is None:
            self._not_cold_for_now(route.key, now)
        return kept, entry

    def _not_cold_for_now(self, key: str, now: float) -> None:
        if len(self._not_cold) >= 4096:
            self._not_cold.clear()
        self._not_cold[key] = now + NOT_COLD_FOR

    async def aclose(self) -> None:
        try:
            await self.storage.close()
        finally:
            if self._reader is not None:
                self._reader.close()
            if self.cold is not None:
                self.cold.close()
