"""A profile for any API that reports its quota in rate-limit headers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import attrs
import httpx

from quotaflow.exceptions import ConfigError
from quotaflow.profiles import ApiProfile, Quota, QuotaReading, Rate, WindowReading, parse_duration

from ._parse import Limit, Policy, _moment, parse_count, parse_policy, parse_ratelimit, parse_reset

__all__ = ["FixedTtl", "RateLimitHeaders", "RateLimitWindow", "profile_for", "readers"]

Period = Literal["day", "month"]

DAY = 86400


def _fits(window: int | None, period: Period) -> bool:
    """Whether a window of ``window`` seconds is the quota's ``period``."""
    if window is None:
        return False
    if period == "day":
        return 0.9 * DAY <= window <= 1.1 * DAY
    return 28 * DAY <= window <= 31 * DAY


def _longest(window: int | None) -> int:
    return -1 if window is None else window


def _quota_policy(policies: Sequence[Policy], period: Period) -> Policy | None:
    """The policy that is the long-window quota: the first whose window fits the period.

    A shorter (or longer) window is never the quota: reading ``q=60;w=60`` as the
    day's quota would refuse requests until midnight once 48 are spent.
    """
    for policy in policies:
        if _fits(policy.window, period):
            return policy
    return None


def _limit(limits: Sequence[Limit], policy: Policy | None, single_policy: bool) -> Limit | None:
    if policy is not None:
        for limit in limits:
            if limit.name == policy.name:
                return limit
        # Unnamed or differently named: pair them only when nothing else could match.
        return limits[0] if single_policy and len(limits) == 1 else None
    # No policy: the limit that resets last is the longest window. Its remaining
    # says most about the quota; a per-second burst's says nothing.
    return max(limits, key=lambda limit: (_longest(limit.reset), -limit.remaining))


def _stated_windows(value: str | None) -> list[int]:
    """The windows a count field states, as in ``X-RateLimit-Limit: 100, 100;w=60``."""
    return [policy.window for policy in parse_policy(value) or () if policy.window is not None]


Windowless = Literal["window", "quota"]


@attrs.frozen
class RateLimitHeaders:
    """Reads the quota from rate-limit headers, the most standard ones first.

    Only fields that describe the quota's ``period`` are read: a shorter window (60
    requests a minute) is a short window, never the quota, whatever its size.

    1. ``RateLimit-Policy`` and ``RateLimit`` (IETF draft): the policy whose window
       fits ``period`` (a day, or 28 to 31 days) is the quota; its ``q`` is the limit,
       the ``r`` of the ``RateLimit`` member of the same name what remains. No policy
       fits: nothing is read. ``RateLimit`` without any policy states no window.
    2. ``RateLimit-Limit`` and ``RateLimit-Remaining`` (early drafts).
    3. ``X-RateLimit-Limit`` and ``X-RateLimit-Remaining`` (de facto): read only if the
       limit states a window that fits (``5000, 5000;w=86400``).

    Fields that state no window (2 and 3 mostly, 1 without a policy) describe a short
    window unless ``windowless="quota"`` says the API documents them as its quota.
    The first family that says anything is used; values it cannot read are unknown.

    Args:
        period: the quota's period, to tell it from shorter windows.
        windowless: what fields stating no window describe: ``"window"`` (a short
            window, left to :class:`RateLimitWindow`) or ``"quota"``.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       A window that does not fit the period is no longer taken for the quota;
       ``windowless`` added.
    """

    period: Period = attrs.field(default="day", validator=attrs.validators.in_(("day", "month")))
    windowless: Windowless = attrs.field(
        default="window", validator=attrs.validators.in_(("window", "quota"))
    )

    def __call__(self, response: httpx.Response) -> QuotaReading:
        headers = response.headers
        policies = parse_policy(headers.get("ratelimit-policy"))
        limits = parse_ratelimit(headers.get("ratelimit"))
        if policies or limits:
            if policies:
                policy = _quota_policy(policies, self.period)
                if policy is None:
                    return QuotaReading()  # every policy is a short window
            elif self.windowless == "quota":
                policy = None
            else:
                return QuotaReading()
            limit = (
                _limit(limits, policy, policies is not None and len(policies) == 1)
                if limits
                else None
            )
            return QuotaReading(
                remaining=limit.remaining if limit is not None else None,
                limit=policy.quota if policy is not None else None,
            )
        for prefix in ("ratelimit-", "x-ratelimit-"):
            raw_limit = headers.get(prefix + "limit")
            reading = QuotaReading(
                remaining=parse_count(headers.get(prefix + "remaining")),
                limit=parse_count(raw_limit),
            )
            if reading == QuotaReading():
                continue
            windows = _stated_windows(raw_limit)
            if windows:
                describes = any(_fits(window, self.period) for window in windows)
            else:
                describes = self.windowless == "quota"
            return reading if describes else QuotaReading()
        return QuotaReading()


# A reset from here on is a moment in epoch seconds, as quotaflow reads WindowReading.
_EPOCH = 10**9


def _within(reset: float | None, window: int | None, response: httpx.Response) -> float | None:
    """``reset``, but never later than the end of the ``window`` the API stated.

    A window of 60 seconds has started again within 60 seconds, whatever its reset
    says; unknown, the reset is the whole window. A moment (epoch seconds) is
    measured from the answer's ``Date``; without one it is the whole window.
    """
    if window is None:
        return reset
    if reset is None:
        return float(window)
    if reset >= _EPOCH:
        sent = _moment(response.headers.get("date") or "")
        return reset if sent is not None and reset - sent <= window else float(window)
    return min(reset, float(window))


def _spent(
    limits: Sequence[Limit], policies: Sequence[Policy] | None, response: httpx.Response
) -> WindowReading:
    """The window of the members of ``RateLimit``: the one spent longest, else the
    one with least left."""
    spent = [limit for limit in limits if limit.remaining == 0]
    if spent:
        # Several spent: hold off until the last of them resets (those without a t
        # say nothing of when).
        chosen = max(spent, key=lambda limit: _longest(limit.reset))
    else:
        chosen = min(limits, key=lambda limit: limit.remaining)  # first of equals
    named = {policy.name: policy for policy in policies or ()}
    policy = named.get(chosen.name)
    return WindowReading(
        remaining=chosen.remaining,
        reset=_within(chosen.reset, policy.window if policy else None, response),
        limit=policy.quota if policy else None,
    )


@attrs.frozen
class RateLimitWindow:
    """Reads the short window from rate-limit headers, the most standard ones first.

    When a window is spent (nothing remaining), quotaflow holds the profile off until
    it resets: requests made on the same key by other clients would otherwise earn
    the next one a 429 (see :class:`quotaflow.WindowReading`).

    1. ``RateLimit`` (IETF draft): a member with ``r=0`` is a spent window, until its
       ``t`` seconds (the latest of them if several are spent); else the member with
       the least left. Its ``RateLimit-Policy`` member's ``q`` is the window's size.
    2. ``RateLimit-Remaining`` and ``RateLimit-Reset`` (early drafts).
    3. ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (de facto): the reset as
       seconds to wait, ``ms``, epoch seconds or milliseconds, or an HTTP date.

    No hold outlasts the window the API stated (a policy's ``w``, or ``;w=`` in the
    limit field): a later reset, or an unknown one, is cut to the window's length.
    The first family that says anything is used; values it cannot read are unknown,
    and an unknown reset with no stated window holds off for the window of the
    profile's rate.

    .. versionadded:: 0.1
    """

    def __call__(self, response: httpx.Response) -> WindowReading:
        headers = response.headers
        limits = parse_ratelimit(headers.get("ratelimit"))
        if limits:
            return _spent(limits, parse_policy(headers.get("ratelimit-policy")), response)
        for prefix in ("ratelimit-", "x-ratelimit-"):
            raw_limit = headers.get(prefix + "limit")
            remaining = parse_count(headers.get(prefix + "remaining"))
            if remaining is None:
                continue
            # Measured from the epoch: a wait comes back as it is, a moment as epoch
            # seconds, which quotaflow tells apart (from 10**9 on) with its own clock.
            reset: float | None = parse_reset(headers.get(prefix + "reset"), 0.0)
            windows = _stated_windows(raw_limit)
            if windows:
                reset = _within(reset, max(windows), response)
            return WindowReading(remaining=remaining, reset=reset, limit=parse_count(raw_limit))
        return WindowReading()


def _ttl(value: float | str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"FixedTtl.ttl: {exc.args[0]}") from None


@attrs.frozen
class FixedTtl:
    """A freshness rule: every successful answer stays fresh ``ttl`` seconds.

    Args:
        ttl: a duration: seconds, or ``"30s"``, ``"5m"``, ``"1h"``, ``"1d"``.

    Raises:
        quotaflow.ConfigError: ``ttl`` is not a duration.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       ``ttl`` is read as a duration; a malformed one is refused (it used to be
       returned as the rule's answer, which turned caching off).
    """

    ttl: float = attrs.field(converter=_ttl)

    def __call__(
        self, request: httpx.Request, response: httpx.Response, now: float
    ) -> float | None:
        return self.ttl


def profile_for(
    name: str,
    hosts: str | Sequence[str],
    *,
    quota: int | None = None,
    quota_period: Period = "day",
    reset_day: int = 1,
    rate: int | None = None,
    per: float | str = 1.0,
    burst: int | None = None,
    ttl: float | str | None = None,
    max_stale: float | str = 0.0,
    secret_params: Sequence[str] = (),
    secret_headers: Sequence[str] = (),
    path_prefix: str = "",
    windowless: Windowless = "window",
) -> ApiProfile:
    """A profile for an API that sends ``RateLimit``/``RateLimit-Policy`` or ``X-RateLimit-*``.

    The quota is read by :class:`RateLimitHeaders`; a window the headers say is spent
    holds the profile off until it resets (:class:`RateLimitWindow`; for ``per``
    seconds when no reset is given, and not at all when neither a reset nor a rate is).

    Args:
        name: the profile's unique name.
        hosts: host names it matches (``"*.example.com"`` for subdomains).
        quota: units per ``quota_period`` assumed until the headers tell the real
            size; None: no quota is enforced (what the headers say is still shown
            in ``ResponseInfo.remaining``).
        quota_period: ``"day"`` or ``"month"`` (UTC).
        reset_day: the day of the month a monthly quota starts again.
        rate: requests per ``per`` seconds (``burst`` at once); None: no rate.
        per: the rate's window: seconds, or ``"30s"``, ``"5m"``, ``"1h"``, ``"1d"``
            (every duration here is read by :func:`quotaflow.parse_duration`).
        burst: how many requests may go at once, at most ``rate`` (``rate`` by
            default); never more than ``rate`` go in any ``per`` seconds.
        ttl: seconds every successful answer stays fresh; None: the API's caching
            headers decide.
        max_stale: seconds past freshness a stored answer may stand in for a failure.
        secret_params: query parameters never stored, keyed on or logged.
        secret_headers: request headers never stored, keyed on or logged.
        path_prefix: only URLs whose path starts with it match.
        windowless: what rate-limit fields that state no window describe: ``"window"``
            (a short window, the default: ``X-RateLimit-Limit: 60`` is 60 a minute,
            not the quota) or ``"quota"`` (the API documents them as its quota of
            ``quota_period``). See :class:`RateLimitHeaders`.

    Raises:
        quotaflow.ConfigError: an argument is invalid; the message names it.

    .. versionadded:: 0.1
    """
    if quota_period not in ("day", "month"):
        raise ConfigError(f"quota_period: expected 'day' or 'month', not {quota_period!r}")
    if windowless not in ("window", "quota"):
        raise ConfigError(f"windowless: expected 'window' or 'quota', not {windowless!r}")
    if ttl is not None:
        try:
            ttl = parse_duration(ttl)
        except ValueError as exc:
            raise ConfigError(f"ttl: {exc.args[0]}") from None
    return ApiProfile(
        name=name,
        hosts=(hosts,) if isinstance(hosts, str) else tuple(hosts),
        path_prefix=path_prefix,
        rates=(Rate(rate, per=per, burst=burst),) if rate is not None else (),
        quota=Quota(quota, period=quota_period, reset_day=reset_day) if quota is not None else None,
        read_quota=RateLimitHeaders(quota_period, windowless),
        read_window=RateLimitWindow(),
        freshness=FixedTtl(ttl) if ttl is not None else None,
        default_ttl=ttl,
        max_stale=max_stale,
        secret_params=tuple(secret_params),
        secret_headers=tuple(secret_headers),
    )


def readers(period: Period = "day", windowless: Windowless = "window") -> dict[str, object]:
    """The ``ratelimit`` convention of ``quotaflow.toml``'s ``[apis.NAME]`` tables
    (``headers = "ratelimit"``), published under the ``quotaflow.headers`` entry-point
    group: the ApiProfile arguments reading the quota (:class:`RateLimitHeaders`) and
    the short window (:class:`RateLimitWindow`).

    Args:
        period: the quota's period (the table's ``quota.period``).
        windowless: see :class:`RateLimitHeaders`.

    Raises:
        ValueError: ``period`` or ``windowless`` is not one of its values.

    .. versionadded:: 0.2
    """
    return {
        "read_quota": RateLimitHeaders(period, windowless),
        "read_window": RateLimitWindow(),
    }
