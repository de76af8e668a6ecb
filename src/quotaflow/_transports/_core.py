"""The policy: the profile's TTL judgment of each answer, and hishel's outcome read into
the call (the stale choice is in ``_stale.py``, reporting in ``_report.py``). Strictly private."""

from __future__ import annotations

import functools
import logging
import math

import attrs
import httpx

from .. import _policy
from .._clock import Clock
from .._info import Cached, CacheStatus, Route, Spent
from .._profiles import (
    DEFAULT_PROFILE,
    ApiProfile,
    Verdict,
)
from .._retention import is_event_stream
from .._rules import HEURISTIC_STATUSES, CacheRules, explicit_freshness
from ._guarded import unread_warning

logger = logging.getLogger("quotaflow")

SAFE_METHODS = frozenset({"GET", "HEAD"})


class UpstreamFailed(Exception):
    """A profiled API answered with a failure (5xx, 429, an error body). Strictly private.

    Raised below hishel so that the failure is neither stored nor allowed to
    invalidate the stored answer, and caught by the fallback layer above it.
    """

    def __init__(self, response: httpx.Response, reason: str) -> None:
        super().__init__(reason)
        self.response = response
        self.reason = reason
        self.status = response.status_code


@attrs.frozen
class Judged:
    """What :meth:`Policy.judge` decided of a fresh answer. Strictly private."""

    ttl: float | None = None
    reason: str = ""
    # Whether it replaces what is stored under the key.
    replaces: bool = False


NOT_JUDGED = Judged()
UNSAFE = Judged(reason="an unsafe method's answer: never stored")


# An origin's Date further than this from our clock is its clock, not the network.
CLOCK_SKEW = 5.0

# Bodies larger than this are streamed on unread, even for profiles whose rules read
# them (``reads_body``), and not stored (``make_client(max_body=...)``).
MAX_BODY = 8 * 2**20


class Policy:
    """The caching layer's domain rules, shared by both twins."""

    def __init__(
        self, clock: Clock, max_body: int = MAX_BODY, rules: CacheRules | None = None
    ) -> None:
        self.clock = clock
        self.max_body = max_body
        self.rules = rules if rules is not None else CacheRules()

    def failed(self, route: Route | None, response: httpx.Response, verdict: Verdict) -> bool:
        """Whether :meth:`judge` will take ``response`` for a failure (its body is then
        read: the fallback and the followers of a single flight keep a copy)."""
        if route is None or route.profile is DEFAULT_PROFILE:
            return False
        status = response.status_code
        return status >= 500 or status == 429 or verdict == "error"

    def judge(
        self,
        route: Route | None,
        request: httpx.Request,
        response: httpx.Response,
        verdict: Verdict,
    ) -> Judged:
        """Apply the URL rules and the profile to a fresh upstream answer before hishel
        sees it: the lifetime they give is written as ``Cache-Control: max-age`` (for
        hishel), and passed up as a value (for everything else).

        Returns the lifetime, why, and whether the answer replaces what is stored under
        the key.

        Raises:
            UpstreamFailed: the answer is a failure a stale one may stand in for.
        """
        now = self.clock.time()
        date = _policy.timestamp(response.headers.get("date"))
        if date is None or date > now + CLOCK_SKEW:
            # hishel ages a response from its Date: without one it would never age, and
            # one from the future would keep it fresh too long (an age below 0 is 0,
            # RFC 9111 §4.2.3): age it from when it arrived.
            response.headers["date"] = _policy.http_date(now)
        if route is None:
            return NOT_JUDGED
        profile = route.profile
        if profile is not DEFAULT_PROFILE:
            status = response.status_code
            if status >= 500 or status == 429:
                raise UpstreamFailed(response, f"status_{status}")
            if verdict == "error":
                raise UpstreamFailed(response, "error_body")
        if request.method not in SAFE_METHODS:
            # Never stored (it invalidates what is stored under its URL, RFC 9111 §4.4,
            # which hishel does): no lifetime to work out (a profile's rule may parse
            # the body) nor to write into the caller's headers.
            return UNSAFE
        ttl, why = self._lifetime(profile, request, response)
        if ttl is None:
            # A new answer replaces the old ones (a forced refresh included), unless the
            # answers vary by request header and live side by side under one key.
            replaces = 200 <= response.status_code < 300 and "vary" not in response.headers
            return Judged(_policy.max_age(response.headers), header_reason(response), replaces)
        lifetime = f"max-age={int(ttl)}"
        if response.headers.get("cache-control") != lifetime:  # else as sent (its case)
            response.headers["cache-control"] = lifetime
        response.headers.pop("expires", None)
        if date is not None and date < now - CLOCK_SKEW:
            # A lifetime the user's rules give counts from when the answer arrived: an
            # origin whose clock runs behind would otherwise have it stale on arrival.
            response.headers["date"] = _policy.http_date(now)
        # Answers that vary by request header live side by side under one key.
        return Judged(float(int(ttl)), why, "vary" not in response.headers)

    def _lifetime(
        self, profile: ApiProfile, request: httpx.Request, response: httpx.Response
    ) -> tuple[float | None, str]:
        """The lifetime the user's rules give the answer, and why (see ``_rules``);
        None: the answer's own headers decide."""
        status = response.status_code
        rule = self.rules.match(request.url)
        if rule is not None and rule.ttl is not None and status in HEURISTIC_STATUSES:
            return rule.ttl, f"fresh {int(rule.ttl)} s by the URL rule {rule.pattern!r}"
        if profile.freshness is not None and 200 <= status < 300:
            try:
                ttl = _policy.clean_ttl(profile.freshness(request, response, self.clock.time()))
            except httpx.ResponseNotRead:
                logger.warning(
                    "profile %s: the freshness rule reads the body, which is not read unless"
                    " the profile says reads_body=True (or the body is over max_body);"
                    " using default_ttl",
                    profile.name,
                )
                ttl = None
            except Exception:
                logger.warning(
                    "profile %s: freshness rule failed on %s, using default_ttl",
                    profile.name,
                    request.url.path,
                    exc_info=True,
                )
                ttl = None
            if ttl is not None:
                return ttl, f"fresh {int(ttl)} s by the freshness rule of profile {profile.name}"
        if explicit_freshness(response.headers):
            return None, ""
        default = profile.default_ttl if profile.default_ttl is not None else self.rules.default_ttl
        if default is None or status not in HEURISTIC_STATUSES:
            return None, ""
        return default, f"fresh {int(default)} s by default_ttl: the answer says nothing"

    def immutable(
        self, route: Route | None, request: httpx.Request, response: httpx.Response
    ) -> float | None:
        """Seconds the profile says a fresh 200 stays as it is (``ApiProfile.immutable``;
        ``math.inf``: for good), so that it goes to the cold store; None: it does not.
        Judged on the body only for ``reads_body`` profiles; a rule that reads an
        unread body (or fails) says None."""
        rule = route.profile.immutable if route is not None else None
        if route is None or rule is None or response.status_code != 200:
            return None
        profile = route.profile
        try:
            keep_for = rule(request, response)
        except httpx.ResponseNotRead:
            unread_warning(profile, "immutable")
            return None
        except Exception:
            logger.warning(
                "profile %s: immutable() failed on %s, not kept cold",
                profile.name,
                request.url.path,
                exc_info=True,
            )
            return None
        if isinstance(keep_for, bool) or not isinstance(keep_for, int | float):
            return None
        if math.isnan(keep_for) or keep_for <= 0:
            return None
        return float(keep_for)


def header_reason(response: httpx.Response) -> str:
    """What the answer's own headers say of its freshness (RFC 9111 §4.2.1)."""
    headers = response.headers
    directives = headers.get("cache-control", "").lower()
    if "no-store" in directives:
        return "no-store in the answer's Cache-Control"
    if headers.get("vary", "").strip() == "*":
        return "Vary: * in the answer: never reused"
    if "no-cache" in directives:
        return "no-cache in the answer's Cache-Control: stored, revalidated before every use"
    lifetime = _policy.max_age(headers)
    if lifetime is not None:
        return f"fresh {lifetime} s by the answer's Cache-Control"
    if "s-maxage" in directives:
        return "only s-maxage in the answer's Cache-Control: for shared caches, not this one"
    if "expires" in headers:
        return "freshness from the answer's Expires"
    if "last-modified" in headers:
        return "heuristic freshness from the answer's Last-Modified"
    return "no freshness in the answer's headers and no rule for it"


def reusable(profile: ApiProfile, headers: httpx.Headers, now: float) -> bool:
    """Whether anything could ever use an answer to ``profile`` with ``headers`` once
    stored (see _retention)."""
    return (
        _policy.retention(
            freshness=_policy.freshness_lifetime(headers, now),
            max_stale=profile.max_stale,
            revalidation_window=profile.revalidation_window,
            validated=_policy.has_validator(headers),
        )
        > 0
    )


# The reason given an answer let through unstored (``Around``, ``Bare``) that is reusable.
NEXT_STORED = "not stored: the last answer here was never reused; the next is"


def worth_storing(profile: ApiProfile, headers: httpx.Headers, now: float) -> bool:
    """Whether an answer let through unstored would have been stored: reusable, neither
    ``no-store`` nor an event stream."""
    return (
        reusable(profile, headers, now)
        and "no-store" not in headers.get("cache-control", "").lower()
        and not is_event_stream(headers.get("content-type"))
    )


def outcome(
    route: Route,
    response: httpx.Response,
    judged: Judged,
    verdict: Verdict | None,
    max_body: int,
    now: float,
    forward: str | None = None,
    caching: object = None,
) -> Cached:
    """How the cache answered, from hishel's status and what ``judge`` decided
    (``verdict``: the rate-limit layer's, None if the answer never came from upstream;
    ``caching``: hishel's status, if it was not asked)."""
    if caching is None:
        caching = response.extensions.get("caching")
    if not isinstance(caching, dict):
        return Cached(ttl=judged.ttl, reason=judged.reason, forward=forward)
    if caching.get("from_cache"):
        revalidated = caching.get("revalidated")
        return Cached(
            CacheStatus.REVALIDATED if revalidated else CacheStatus.HIT,
            _policy.max_age(response.headers),
            True,
            "storage",
            "revalidated: the origin confirmed the stored answer (304)"
            if revalidated
            else "fresh in storage",
            forward,
        )
    # hishel also flags a full 200 to a conditional request as revalidated:
    # for the caller that is a new answer, so a miss.
    stored = bool(caching.get("stored"))
    reason = judged.reason
    length = response.headers.get("content-length")
    if stored and is_event_stream(response.headers.get("content-type")):
        stored, reason = False, "an event stream is never stored"
    elif stored and length is not None and length.isdigit() and int(length) > max_body:
        stored, reason = False, f"the body is over max_body ({max_body} bytes)"
    elif stored and not reusable(route.profile, response.headers, now):
        stored = False  # the reason says why: no freshness, no validator, no max_stale
    elif not stored and verdict in ("ok", None) and response.status_code < 500:
        reason = reason or "not storable under RFC 9111"
    return Cached(CacheStatus.MISS, judged.ttl, stored, None, reason, forward)


# Where the caching layer's policy half (below hishel) leaves what it saw for the
# caching layer's top half: hishel passes an answer's extensions up, but not those of
# a 304 it revalidated with.
BELOW = "quotaflow.below"

# hishel's status of an answer it neither had nor stored: what it gives an unsafe
# request to a key with nothing stored under it (nothing to invalidate).
PASSED = {"from_cache": False, "stored": False}


@attrs.define
class FromBelow:
    """What the policy half saw of the answer from upstream, for the caching layer's
    top half: one per request through hishel, written by the caching layer's own policy
    half only. Strictly private."""

    spent: Spent | None = None
    judged: Judged = NOT_JUDGED
    keep_for: float | None = None
    # Cache-Status ``fwd`` (``_cache_status``): why the request went upstream.
    forward: str | None = None


@functools.lru_cache(maxsize=256)
def hit(ttl: float | None, tier: str, reason: str, stamped: bool = False) -> Cached:
    """The record of a hit (the same few for every hit: built once). ``stamped``: the
    answer carries its Cache-Status already (the hot tier's entries build it)."""
    return Cached(CacheStatus.HIT, ttl, True, tier, reason, stamped=stamped)
