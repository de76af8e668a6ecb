from __future__ import annotations

import enum
import hashlib

import attrs
import httpx

from ._priority import Priority
from ._profiles import ApiProfile, Verdict

__all__ = ["CacheStatus", "ResponseInfo"]


class CacheStatus(enum.StrEnum):
    """How the cache answered. Compares equal to its lower-case name.

    .. versionadded:: 0.1
    """

    HIT = "hit"
    MISS = "miss"
    REVALIDATED = "revalidated"
    STALE = "stale"


@attrs.frozen
class ResponseInfo:
    """What quotaflow did for one response: ``response.extensions["quotaflow"]``.

    Attributes:
        profile: name of the API profile that matched (``"default"`` if none).
        priority: the request's priority.
        cache: how the cache answered.
        cost: quota units spent upstream by this call (0 if it spent none).
        remaining: quota units remaining as last known, or None.
        waited: seconds spent waiting for the short-window limiter.
        ttl: freshness lifetime assigned to the stored response, or None.
        stale_reason: for stale answers, why (``"quota"``, ``"rate_limit"``,
            ``"timeout"``, ``"network"``, ``"status_503"``, ``"error_body"``...).
        age: for stale answers, seconds since the stored response was received.
        stored: whether the answer is in the cache: stored now (a miss the cache
            keeps), or served from it.
        tier: for answers from the cache, where from: ``"memory"`` (this process's
            hot tier), ``"storage"`` (SQLite or Redis) or ``"cold"`` (the cold store of
            answers the profile says never change, ``cold.db``); else None.
        reason: why, in a short sentence: which rule gave which freshness, or why the
            answer was not stored (``no-store``, an error body, over ``max_body``, no
            freshness and no ``default_ttl``...). Logged at DEBUG for every request.
        forecast: for answers the API counted (a profile with a ``quota``), the units
            left at the reset if spending goes on at the period's rate so far
            (negative: the quota runs out before); None for answers that did not reach
            the API, or too early in the period to say.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 ``stored``, ``tier`` and ``reason``.
    .. versionchanged:: 0.3 ``tier`` may be ``"cold"``; ``forecast``.
    """

    profile: str
    priority: Priority
    cache: CacheStatus
    cost: int = 0
    remaining: int | None = None
    waited: float = 0.0
    ttl: float | None = None
    stale_reason: str | None = None
    age: float | None = None
    stored: bool = False
    tier: str | None = None
    reason: str = ""
    forecast: float | None = None


# What a hit's ResponseInfo varies by: priority, remaining, ttl, tier, reason.
HitKey = tuple[Priority, int | None, float | None, str | None, str]


def storage_key(resource: str) -> str:
    """The key a resource is stored under (hishel's, the fallback's, the leases')."""
    return hashlib.sha256(resource.encode()).hexdigest()


@attrs.frozen
class Route:
    """Data down: what one request means to the stack, worked out once at the top
    (``Router.route``) and read by every layer from ``request.extensions``. Strictly
    private."""

    profile: ApiProfile
    priority: Priority
    # The request's URL without secrets, query sorted: what the cache knows it by.
    resource: str
    # The request as the caller made it, secrets included: only sent upstream.
    url: httpx.URL
    # The URL below the hot tier: no secrets, query sorted (may be ``url`` itself).
    inner_url: httpx.URL
    # The storage key (hishel's, the fallback's, the leases').
    key: str
    # The infos of hits on this resource, kept per URL by the Router (a memo).
    hit_infos: dict[HitKey, ResponseInfo] = attrs.field(eq=False, repr=False)
    secret_headers: tuple[tuple[str, str], ...] = ()
    # Whether the in-memory tier may answer (a GET without cache directives).
    hot: bool = False
    # The short fingerprint of the credential the request carries (None: none): its
    # quota account. The storage key includes the whole fingerprint (``_credentials``).
    account: str | None = None
    # The caller's URL needs no redacted copy (nothing secret, query already sorted).
    plain_url: bool = False
    # The single-flight lease the caching layer's leader asks the rate-limit layer to
    # take with its reservation (one round trip for both) and land with its settle.
    lease: Lease | None = None


@attrs.frozen
class Lease:
    """A cross-process single-flight lease a leader asks for: the storage key, and the
    token that will hold it (made by the caching layer, so it can give it back whatever
    happened below). Strictly private."""

    key: str
    token: str


@attrs.frozen
class Spent:
    """Data up from the rate-limit layer: what reaching upstream took, on the answer
    (``response.extensions``) or on the error it raised. Its presence says the request
    went upstream. Strictly private."""

    cost: int = 0
    remaining: int | None = None
    waited: float = 0.0
    verdict: Verdict = "ok"
    # The profile's rules read the body (``reads_body``), so the body is in memory.
    buffered: bool = False
    # Units left at the reset at the period's rate so far, as the answer was recorded.
    forecast: float | None = None
    # The route's lease was landed with the settle (``Limiter.settle``): it lapses
    # ``FOLLOW_BODY`` later by itself, so a stored answer needs no release of its own.
    landed: bool = False


@attrs.frozen
class Cached:
    """Data up from the caching layer: how the cache answered. Strictly private."""

    cache: CacheStatus = CacheStatus.MISS
    ttl: float | None = None
    stored: bool = False
    tier: str | None = None
    reason: str = ""
    # RFC 9211 Cache-Status (``_cache_status``): why the cache went upstream (its ``fwd``
    # value; None: it did not, or nothing finer than ``miss`` is known), and whether the
    # answer is a single-flight leader's, reused (``collapsed``).
    forward: str | None = None
    collapsed: bool = False
    # The answer is the hot tier's, Cache-Status included (``HotEntry.response``).
    stamped: bool = False


NOT_CACHED = Cached()

# Where the records ride: the route on the request, one record per layer on the answer.
ROUTE, SPENT, CACHED = "quotaflow.route", "quotaflow.spent", "quotaflow.cached"
# An error the rate-limit layer raises carries its Spent in this attribute.
_SPENT_ATTR = "_quotaflow_spent"


def route_of(request: httpx.Request) -> Route | None:
    route = request.extensions.get(ROUTE)
    return route if isinstance(route, Route) else None


def spent_of(source: httpx.Response | BaseException) -> Spent | None:
    """The rate-limit layer's record on an answer or an error (None: never upstream)."""
    if isinstance(source, BaseException):
        found = getattr(source, _SPENT_ATTR, None)
    else:
        found = source.extensions.get(SPENT)
    return found if isinstance(found, Spent) else None


def with_spent(error: BaseException, spent: Spent) -> BaseException:
    """``error`` carrying ``spent`` up to the fallback (what it cost, how long it waited)."""
    setattr(error, _SPENT_ATTR, spent)
    return error


def cached_of(response: httpx.Response) -> Cached:
    found = response.extensions.get(CACHED)
    return found if isinstance(found, Cached) else NOT_CACHED


def assemble(
    route: Route, cached: Cached, spent: Spent | None, remaining: int | None
) -> ResponseInfo:
    """The outermost layer's ResponseInfo, from the route and the layers' records."""
    cost, waited = (spent.cost, spent.waited) if spent is not None else (0, 0.0)
    if cached.cache is not CacheStatus.HIT or cost or waited:
        forecast = spent.forecast if spent is not None else None
        return _info(route, cached, cost, waited, remaining, forecast)
    # A hit: the same resource, priority, remaining, ttl, tier and reason give the same info.
    infos = route.hit_infos
    key = (route.priority, remaining, cached.ttl, cached.tier, cached.reason)
    found = infos.get(key)
    if found is None:
        if len(infos) >= 16:
            infos.clear()
        found = infos[key] = _info(route, cached, cost, waited, remaining)
    return found


def _info(
    route: Route,
    cached: Cached,
    cost: int,
    waited: float,
    remaining: int | None,
    forecast: float | None = None,
) -> ResponseInfo:
    return ResponseInfo(
        profile=route.profile.name,
        priority=route.priority,
        cache=cached.cache,
        cost=cost,
        remaining=remaining,
        waited=waited,
        ttl=cached.ttl,
        stored=cached.stored,
        tier=cached.tier,
        reason=cached.reason,
        forecast=forecast,
    )
