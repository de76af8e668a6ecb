"""How long hishel keeps each stored answer. Strictly private.

hishel takes a TTL per entry (``create_entry(ttl=...)``) and then hides and deletes it on
its own: SqliteStorage's cleanup before each store, RedisStorage's key expiry. Without one,
SQLite keeps an entry forever and Redis for the storage's ``default_ttl``, which must not
decide what the fallback can serve. The TTL comes from the answer as stored (the profile's
freshness is already written as ``Cache-Control: max-age`` by then) and the profile of its
URL; see :func:`quotaflow._policy.retention` for the rule.
"""

from __future__ import annotations

import logging
import uuid

import hishel
import httpx

from . import _policy
from ._clock import Clock
from ._profiles import Registry

logger = logging.getLogger("quotaflow")


def entry_ttl(
    registry: Registry, clock: Clock, request: hishel.Request, response: hishel.Response
) -> float | None:
    """Seconds to keep ``response``, stored for ``request`` now (None: the storage's
    default, should the answer be beyond reading; storing never fails a request)."""
    try:
        profile = registry.match(httpx.URL(request.url))
        headers = response.headers
        return _policy.retention(
            freshness=_policy.freshness_lifetime(headers, clock.time()),
            max_stale=profile.max_stale,
            revalidation_window=profile.revalidation_window,
            validated=_policy.has_validator(headers),
        )
    except Exception:
        logger.warning("quotaflow: no retention for %s", request.url, exc_info=True)
        return None


def never_stored(response: hishel.Response) -> bool:
    """Answers that pass through unstored whatever their headers say."""
    return is_event_stream(response.headers.get("content-type"))


def is_event_stream(content_type: str | None) -> bool:
    """Server-sent events are a live feed, not a document: never stored or kept."""
    return (content_type or "").split(";")[0].strip().lower() == "text/event-stream"


class RetainingStorage(hishel.BaseStorage):
    """A hishel storage whose entries get the profile's retention as their TTL."""

    def __init__(self, storage: hishel.BaseStorage, registry: Registry, clock: Clock) -> None:
        super().__init__(
            default_ttl=storage.default_ttl,
            default_tti=storage.default_tti,
            max_stream_size=storage.max_stream_size,
        )
        self.storage = storage
        self._registry = registry
        self._clock = clock

    def create_entry(
        self,
        request: hishel.Request,
        response: hishel.Response,
        key: str,
        *,
        ttl: float | None = None,
        tti: float | None = None,
    ) -> hishel.Entry:
        if never_stored(response):
            return hishel.Entry(id=uuid.uuid4(), request=request, response=response)
        if ttl is None:  # a TTL the caller set in extensions["caching"] wins
            ttl = entry_ttl(self._registry, self._clock, request, response)
        return self.storage.create_entry(request, response, key, ttl=ttl, tti=tti)

    def get_entries(self, key: str) -> list[hishel.Entry]:
        return self.storage.get_entries(key)

    def update_headers(self, id: uuid.UUID, headers: hishel.Headers) -> None:
        self.storage.update_headers(id, headers)

    def remove_entry(self, id: uuid.UUID) -> None:
        self.storage.remove_entry(id)

    def close(self) -> None:
        self.storage.close()


class AsyncRetainingStorage(hishel.AsyncBaseStorage):
    """Async twin of :class:`RetainingStorage`."""

    def __init__(self, storage: hishel.AsyncBaseStorage, registry: Registry, clock: Clock) -> None:
        super().__init__(
            default_ttl=storage.default_ttl,
            default_tti=storage.default_tti,
            max_stream_size=storage.max_stream_size,
        )
        self.storage = storage
        self._registry = registry
        self._clock = clock

    async def create_entry(
        self,
        request: hishel.Request,
        response: hishel.Response,
        key: str,
        *,
        ttl: float | None = None,
        tti: float | None = None,
    ) -> hishel.Entry:
        if never_stored(response):
            return hishel.Entry(id=uuid.uuid4(), request=request, response=response)
        if ttl is None:
            ttl = entry_ttl(self._registry, self._clock, request, response)
        return await self.storage.create_entry(request, response, key, ttl=ttl, tti=tti)

    async def get_entries(self, key: str) -> list[hishel.Entry]:
        return await self.storage.get_entries(key)

    async def update_headers(self, id: uuid.UUID, headers: hishel.Headers) -> None:
        await self.storage.update_headers(id, headers)

    async def remove_entry(self, id: uuid.UUID) -> None:
        await self.storage.remove_entry(id)

    async def close(self) -> None:
        await self.storage.close()
