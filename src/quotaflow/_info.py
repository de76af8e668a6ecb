from __future__ import annotations

import enum
import hashlib
from typing import Any

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

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 ``stored``, ``tier`` and ``reason``.
    .. versionchanged:: 0.3 ``tier`` may be ``"cold"``.
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


def storage_key(resource: str) -> str:
    """The key a resource is stored under (hishel's, the fallback's, the leases')."""
    return hashlib.sha256(resource.encode()).hexdigest()


@attrs.define
class Call:
    """One request's way through the stack; the layers fill it in. Strictly private."""

    profile: ApiProfile
    priority: Priority
    # The request's URL without secrets, query sorted: what the cache knows it by.
    resource: str
    # The request as the caller made it, secrets included: only sent upstream.
    url: httpx.URL
    # The URL below the hot tier: no secrets, query sorted (may be ``url`` itself).
    inner_url: httpx.URL
    # The storage key (hishel's, the fallback's, the leases'), and the infos of hits on
    # this resource by (priority, remaining, ttl): both kept per URL by the Router.
    key: str
    hit_infos: dict[tuple[Priority, int | None, float | None, str | None], ResponseInfo]
    secret_headers: tuple[tuple[str, str], ...] = ()
    cache: CacheStatus = CacheStatus.MISS
    cost: int = 0
    remaining: int | None = None
    waited: float = 0.0
    ttl: float | None = None
    verdict: Verdict = "ok"
    upstream: bool = False
    # Single flight: the flight this call leads, and whether it already waited for one.
    flight: Any = None
    # Whether the in-memory tier may answer (a GET without cache directives).
    hot: bool = False
    # The short fingerprint of the credential the request carries (None: none): its
    # quota account. The storage key includes the whole fingerprint (``_credentials``).
    account: str | None = None
    # The profile's rules read the body (``reads_body``), so the body is in memory.
    buffered: bool = False
    # The caller's URL needs no redacted copy (nothing secret, query already sorted).
    plain_url: bool = False
    # What ResponseInfo says of the cache: in it, which tier, and why.
    stored: bool = False
    tier: str | None = None
    reason: str = ""
    # Seconds the profile says the fresh answer stays as it is (``immutable``; inf: for
    # good), so the caching layer keeps it in the cold store; None: an ordinary answer.
    keep_for: float | None = None
    # RFC 9211 Cache-Status (``_cache_status``): why the cache went upstream (its ``fwd``
    # value; None: it did not, or nothing finer than ``miss`` is known), and whether the
    # answer is a single-flight leader's, reused (``collapsed``).
    forward: str | None = None
    collapsed: bool = False
    # The answer is the hot tier's, Cache-Status included (``HotEntry.response``).
    stamped: bool = False

    def info(self, **changes: Any) -> ResponseInfo:
        if changes or self.cache is not CacheStatus.HIT or self.cost or self.waited:
            return self.make_info(**changes)
        # A hit: the same resource, priority, remaining and ttl give the same info.
        infos = self.hit_infos
        key = (self.priority, self.remaining, self.ttl, self.tier)
        found = infos.get(key)
        if found is None:
            if len(infos) >= 16:
                infos.clear()
            found = infos[key] = self.make_info()
        return found

    def make_info(self, **changes: Any) -> ResponseInfo:
        info = ResponseInfo(
            profile=self.profile.name,
            priority=self.priority,
            cache=self.cache,
            cost=self.cost,
            remaining=self.remaining,
            waited=self.waited,
            ttl=self.ttl,
            stored=self.stored,
            tier=self.tier,
            reason=self.reason,
        )
        return attrs.evolve(info, **changes) if changes else info
