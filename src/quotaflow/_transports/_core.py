"""The policy: the profile's TTL judgment of each answer, and hishel's outcome read into
the call (the stale choice is in ``_stale.py``, reporting in ``_report.py``). Strictly private."""

from __future__ import annotations

import logging
import math

import httpx

from .. import _policy
from .._clock import Clock
from .._info import CacheStatus, Call
from .._profiles import (
    DEFAULT_PROFILE,
    ApiProfile,
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

    def failed(self, call: Call | None, response: httpx.Response) -> bool:
        """Whether :meth:`judge` will take ``response`` for a failure (its body is then
        read: the fallback and the followers of a single flight keep a copy)."""
        if call is None or call.profile is DEFAULT_PROFILE:
            return False
        status = response.status_code
        return status >= 500 or status == 429 or call.verdict == "error"

    def judge(self, call: Call | None, request: httpx.Request, response: httpx.Response) -> bool:
        """Apply the URL rules and the profile to a fresh upstream answer before hishel
        sees it: the lifetime they give is written as ``Cache-Control: max-age``.

        Returns whether the answer replaces what is stored under the key.

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
        if call is None:
            return False
        profile = call.profile
        if profile is not DEFAULT_PROFILE:
            status = response.status_code
            if status >= 500 or status == 429:
                raise UpstreamFailed(response, f"status_{status}")
            if call.verdict == "error":
                raise UpstreamFailed(response, "error_body")
        ttl, why = self._lifetime(profile, request, response)
        if ttl is None:
            call.ttl = _policy.max_age(response.headers)
            call.reason = _header_reason(response)
            # A new answer replaces the old ones (a forced refresh included), unless the
            # answers vary by request header and live side by side under one key.
            return 200 <= response.status_code < 300 and "vary" not in response.headers
        response.headers["cache-control"] = f"max-age={int(ttl)}"
        response.headers.pop("expires", None)
        if date is not None and date < now - CLOCK_SKEW:
            # A lifetime the user's rules give counts from when the answer arrived: an
            # origin whose clock runs behind would otherwise have it stale on arrival.
            response.headers["date"] = _policy.http_date(now)
        call.ttl = float(int(ttl))
        call.reason = why
        # Answers that vary by request header live side by side under one key.
        return "vary" not in response.headers

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
        self, call: Call | None, request: httpx.Request, response: httpx.Response
    ) -> float | None:
        """Seconds the profile says a fresh 200 stays as it is (``ApiProfile.immutable``;
        ``math.inf``: for good), so that it goes to the cold store; None: it does not.
        Judged on the body only for ``reads_body`` profiles; a rule that reads an
        unread body (or fails) says None."""
        rule = call.profile.immutable if call is not None else None
        if call is None or rule is None or response.status_code != 200:
            return None
        profile = call.profile
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


def _header_reason(response: httpx.Response) -> str:
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


def reused(call: Call, response: httpx.Response, now: float) -> bool:
    """Whether anything could ever use the answer once stored (see _retention)."""
    headers = response.headers
    return (
        _policy.retention(
            freshness=_policy.freshness_lifetime(headers, now),
            max_stale=call.profile.max_stale,
            revalidation_window=call.profile.revalidation_window,
            validated=_policy.has_validator(headers),
        )
        > 0
    )


def outcome(call: Call, response: httpx.Response, max_body: int, now: float) -> None:
    """Read hishel's status into the call."""
    caching = response.extensions.get("caching")
    if not isinstance(caching, dict):
        return
    if caching.get("from_cache"):
        revalidated = caching.get("revalidated")
        call.cache = CacheStatus.REVALIDATED if revalidated else CacheStatus.HIT
        call.ttl = _policy.max_age(response.headers)
        call.stored, call.tier = True, "storage"
        call.reason = (
            "revalidated: the origin confirmed the stored answer (304)"
            if revalidated
            else "fresh in storage"
        )
        return
    # hishel also flags a full 200 to a conditional request as revalidated:
    # for the caller that is a new answer, so a miss.
    call.cache = CacheStatus.MISS
    stored = bool(caching.get("stored"))
    length = response.headers.get("content-length")
    if stored and is_event_stream(response.headers.get("content-type")):
        stored, call.reason = False, "an event stream is never stored"
    elif stored and length is not None and length.isdigit() and int(length) > max_body:
        stored, call.reason = False, f"the body is over max_body ({max_body} bytes)"
    elif stored and not reused(call, response, now):
        stored = False  # the reason says why: no freshness, no validator, no max_stale
    elif not stored and call.verdict == "ok" and response.status_code < 500:
        call.reason = call.reason or "not storable under RFC 9111"
    call.stored = stored
