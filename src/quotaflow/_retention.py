"""How long hishel keeps each stored answer. Strictly private.

hishel takes a TTL per entry (``create_entry(ttl=...)``) and then hides and deletes it on
its own: SqliteStorage's cleanup before each store, RedisStorage's key expiry. Without one,
SQLite keeps an entry forever and Redis for the storage's ``default_ttl``, which must not
decide what the fallback can serve. The TTL comes from the answer as stored (the profile's
freshness is already written as ``Cache-Control: max-age`` by then) and the profile of its
URL; see :func:`quotaflow._policy.retention` for the rule.

Every entry passes here, so this is also where an answer is made fit to keep
(:func:`stored_response`): no secret in a URL-valued header, no ``Set-Cookie``, no
validator that could not be sent back, no freshness past the ceiling. The caller's live
answer keeps its headers as they came.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, Collection
from contextvars import ContextVar
from typing import Protocol, cast

import hishel
import httpx

from . import _policy
from ._clock import Clock
from ._hot import HotEntry
from ._known import EmptyKeys
from ._plugins import Registry
from ._profiles import ApiProfile
from ._raw import RAW, stored_raw
from ._secrets import redact_header_url, redact_links, redact_url

logger = logging.getLogger("quotaflow")

# The key the last lookup in this context (a request's thread or task) found nothing
# under, else None: the caching layer clears it before each pass through hishel
# (``athrough``), so what the policy half reads there is hishel's own lookup of that
# request, moments before. An answer that replaces what is stored under its key then
# needs no second lookup (``_async_policy``). Another process's store in between is
# not removed, as one just after a second lookup would not be either.
FOUND_NOTHING: ContextVar[str | None] = ContextVar("quotaflow_found_nothing", default=None)

# The profile of a URL (a hishel request's) whose text the storage may keep as it is:
# no userinfo, no secret parameter (``Router.stored_profile``); None if not known so.
Resources = Callable[[str], ApiProfile | None]


class OneRead(Protocol):
    def fresh(self, key: str, resource: str, now: float, max_body: int) -> HotEntry | None: ...


class AsyncOneRead(Protocol):
    async def afresh(
        self, key: str, resource: str, now: float, max_body: int
    ) -> HotEntry | None: ...


def entry_ttl(
    registry: Registry,
    clock: Clock,
    request: hishel.Request,
    response: hishel.Response,
    profile: ApiProfile | None = None,
) -> float | None:
    """Seconds to keep ``response``, stored for ``request`` now (None: the storage's
    default, should the answer be beyond reading; storing never fails a request).
    ``profile``: the URL's, if known (else matched here)."""
    try:
        if profile is None:
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


def never_stored(response: hishel.Response, stored: hishel.Response) -> bool:
    """Answers that pass through unstored whatever their headers say: event streams,
    redirects that set a cookie, and redirects whose target carries a secret (stored
    redacted, a hit would send the client to a URL with the secret blanked out;
    ``stored`` is the redacted copy)."""
    if is_event_stream(response.headers.get("content-type")):
        return True
    if not 300 <= response.status_code < 400:
        return False
    # A redirect that sets a cookie is a step of a login or session flow: replayed
    # without its Set-Cookie (never stored), the target would refuse the client.
    if response.headers.get_list("set-cookie"):
        return True
    return response.headers.get_list("location") != stored.headers.get_list("location")


def is_event_stream(content_type: str | None) -> bool:
    """Server-sent events are a live feed, not a document: never stored or kept."""
    return (content_type or "").split(";")[0].strip().lower() == "text/event-stream"


# The client's cookie jar took these from the live answer; a stored copy would replay a
# session to whoever reads the cache.
_NEVER_STORED = frozenset({"set-cookie", "set-cookie2"})
_URL_VALUED = frozenset({"location", "content-location"})
# Sent back as If-None-Match / If-Modified-Since: httpx encodes header values as ASCII,
# so a non-ASCII validator would fail every revalidation of the URL (RFC 9110 §8.8.3
# allows only ASCII in an entity-tag anyway).
_VALIDATORS = frozenset({"etag", "last-modified"})


def _stored_values(name: str, values: list[str], secrets: Collection[str]) -> list[str]:
    if name in _NEVER_STORED:
        return []
    if name in _URL_VALUED:
        return [redact_header_url(value, secrets) for value in values]
    if name == "link":
        return [redact_links(value, secrets) for value in values]
    if name in _VALIDATORS and not all(value.isascii() for value in values):
        return []
    if name == "cache-control":
        return [_policy.clamp_cache_control(value) for value in values]
    return values


def stored_headers(headers: hishel.Headers, secrets: Collection[str]) -> hishel.Headers:
    """``headers`` as they may be stored: the same object when nothing had to change."""
    kept: dict[str, list[str]] = {}
    changed = False
    for name in headers:
        values = headers.get_list(name) or []
        stored = _stored_values(name, values, secrets)
        changed = changed or stored != values
        if stored:
            kept[name] = stored
    if changed and RAW in kept:  # the pairs as sent, less what the rules changed
        stored_raw(kept, lambda name, values: _stored_values(name, values, secrets))
    return hishel.Headers(kept) if changed else headers


def stored_request(request: hishel.Request, secrets: Collection[str]) -> hishel.Request:
    """The request as stored: no userinfo, no secret parameter value (the stack strips
    both above hishel; this holds for any request that reaches a storage)."""
    url = httpx.URL(request.url)
    clean = redact_url(url, secrets)
    return request if clean is url else dataclasses.replace(request, url=str(clean))


def stored_response(response: hishel.Response, secrets: Collection[str]) -> hishel.Response:
    headers = stored_headers(response.headers, secrets)
    return (
        response if headers is response.headers else dataclasses.replace(response, headers=headers)
    )


def _live(entry: hishel.Entry, response: hishel.Response) -> hishel.Entry:
    """The entry hishel answers the caller with now: the stored one (its stream saves the
    body as the caller reads it) with the headers as they came (cookies for the jar, the
    real Location to follow)."""
    if entry.response.headers is response.headers:
        return entry
    return dataclasses.replace(
        entry, response=dataclasses.replace(entry.response, headers=response.headers)
    )


class RetainingStorage(hishel.BaseStorage):
    """A hishel storage whose entries get the profile's retention as their TTL."""

    def __init__(
        self,
        storage: hishel.BaseStorage,
        registry: Registry,
        clock: Clock,
        known: EmptyKeys | None = None,
        resources: Resources | None = None,
    ) -> None:
        super().__init__(
            default_ttl=storage.default_ttl,
            default_tti=storage.default_tti,
            max_stream_size=storage.max_stream_size,
        )
        self.storage = storage
        self._registry = registry
        self._clock = clock
        # Keys known to hold nothing (``_known.py``): not read, until stored under.
        self._known = known if known is not None else EmptyKeys()
        # A storage that reads a fresh answer whole in one go (Redis): ``fresh``.
        self.one_read = callable(getattr(storage, "fresh", None))
        self._resources = resources

    def create_entry(
        self,
        request: hishel.Request,
        response: hishel.Response,
        key: str,
        *,
        ttl: float | None = None,
        tti: float | None = None,
    ) -> hishel.Entry:
        secrets = self._registry.secret_params
        stored = stored_response(response, secrets)
        if never_stored(response, stored):
            return hishel.Entry(id=uuid.uuid4(), request=request, response=response)
        # A URL the router made clean needs no parsing again (``Router.stored_profile``).
        profile = self._resources(request.url) if self._resources is not None else None
        if ttl is None:  # a TTL the caller set in extensions["caching"] wins
            ttl = entry_ttl(self._registry, self._clock, request, stored, profile)
            if ttl is not None and ttl <= 0:  # never reused: not worth a write
                return hishel.Entry(id=uuid.uuid4(), request=request, response=response)
        kept = request if profile is not None else stored_request(request, secrets)
        entry = self.storage.create_entry(kept, stored, key, ttl=ttl, tti=tti)
        self._known.filled(key)
        return _live(entry, response)

    def get_entries(self, key: str) -> list[hishel.Entry]:
        if key in self._known:
            FOUND_NOTHING.set(key)
            return []
        entries = self.storage.get_entries(key)
        FOUND_NOTHING.set(None if entries else key)
        return entries

    def fresh(self, key: str, resource: str, now: float, max_body: int) -> HotEntry | None:
        """The storage's own fresh read (``one_read``), see ``_cache.read_fresh``."""
        if key in self._known:
            return None
        return cast(OneRead, self.storage).fresh(key, resource, now, max_body)

    def update_headers(self, id: uuid.UUID, headers: hishel.Headers) -> None:
        # A 304's headers join the stored ones (RFC 9111 §4.3.4): the same rules apply.
        self.storage.update_headers(id, stored_headers(headers, self._registry.secret_params))

    def remove_entry(self, id: uuid.UUID) -> None:
        self.storage.remove_entry(id)

    def close(self) -> None:
        self.storage.close()


class AsyncRetainingStorage(hishel.AsyncBaseStorage):
    """Async twin of :class:`RetainingStorage`."""

    def __init__(
        self,
        storage: hishel.AsyncBaseStorage,
        registry: Registry,
        clock: Clock,
        known: EmptyKeys | None = None,
        resources: Resources | None = None,
    ) -> None:
        super().__init__(
            default_ttl=storage.default_ttl,
            default_tti=storage.default_tti,
            max_stream_size=storage.max_stream_size,
        )
        self.storage = storage
        self._registry = registry
        self._clock = clock
        # Keys known to hold nothing (``_known.py``): not read, until stored under.
        self._known = known if known is not None else EmptyKeys()
        self.one_read = callable(getattr(storage, "afresh", None))
        self._resources = resources

    async def create_entry(
        self,
        request: hishel.Request,
        response: hishel.Response,
        key: str,
        *,
        ttl: float | None = None,
        tti: float | None = None,
    ) -> hishel.Entry:
        secrets = self._registry.secret_params
        stored = stored_response(response, secrets)
        if never_stored(response, stored):
            return hishel.Entry(id=uuid.uuid4(), request=request, response=response)
        profile = self._resources(request.url) if self._resources is not None else None
        if ttl is None:
            ttl = entry_ttl(self._registry, self._clock, request, stored, profile)
            if ttl is not None and ttl <= 0:
                return hishel.Entry(id=uuid.uuid4(), request=request, response=response)
        kept = request if profile is not None else stored_request(request, secrets)
        entry = await self.storage.create_entry(kept, stored, key, ttl=ttl, tti=tti)
        self._known.filled(key)
        return _live(entry, response)

    async def get_entries(self, key: str) -> list[hishel.Entry]:
        if key in self._known:
            FOUND_NOTHING.set(key)
            return []
        entries = await self.storage.get_entries(key)
        FOUND_NOTHING.set(None if entries else key)
        return entries

    async def afresh(self, key: str, resource: str, now: float, max_body: int) -> HotEntry | None:
        """:meth:`RetainingStorage.fresh`."""
        if key in self._known:
            return None
        return await cast(AsyncOneRead, self.storage).afresh(key, resource, now, max_body)

    async def update_headers(self, id: uuid.UUID, headers: hishel.Headers) -> None:
        await self.storage.update_headers(id, stored_headers(headers, self._registry.secret_params))

    async def remove_entry(self, id: uuid.UUID) -> None:
        await self.storage.remove_entry(id)

    async def close(self) -> None:
        await self.storage.close()
