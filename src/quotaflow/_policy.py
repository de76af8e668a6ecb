"""Pure decisions: every function takes ``now`` and returns a value. Strictly private."""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from ._fields import Pace
from ._profiles import Quota

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)


def period_start(quota: Quota, now: float) -> float:
    """Start (epoch seconds, UTC) of the quota period that contains ``now``."""
    moment = datetime.fromtimestamp(now, UTC)
    if quota.period == "day":
        return datetime(moment.year, moment.month, moment.day, tzinfo=UTC).timestamp()

    def reset_in(year: int, month: int) -> datetime:
        day = min(quota.reset_day, calendar.monthrange(year, month)[1])
        return datetime(year, month, day, tzinfo=UTC)

    start = reset_in(moment.year, moment.month)
    if start > moment:
        year, month = (moment.year, moment.month - 1) if moment.month > 1 else (moment.year - 1, 12)
        start = reset_in(year, month)
    return start.timestamp()


def period_end(quota: Quota, now: float) -> float:
    """End (epoch seconds, UTC) of the quota period that contains ``now``: the next reset."""
    start = datetime.fromtimestamp(period_start(quota, now), UTC)
    if quota.period == "day":
        return start.timestamp() + 86400
    year, month = (start.year, start.month + 1) if start.month < 12 else (start.year + 1, 1)
    day = min(quota.reset_day, calendar.monthrange(year, month)[1])
    return datetime(year, month, day, tzinfo=UTC).timestamp()


def _weighted(moment: float, weights: tuple[float, ...]) -> float:
    """Weight-seconds from the epoch to ``moment``: each second counts its UTC hour's
    weight (whole days at once, so a month costs a few operations)."""
    days, rest = divmod(moment, 86400.0)
    hour, seconds = divmod(rest, 3600.0)
    return (days * sum(weights) + sum(weights[: int(hour)])) * 3600.0 + weights[int(hour)] * seconds


def elapsed_share(*, now: float, start: float, end: float, pace: Pace | None = None) -> float:
    """How much of the period ``start``-``end`` has passed at ``now``, in [0, 1]: of its
    time, or with hour-of-day weights (``pace``), of its weighted time."""
    if end <= start:
        return 1.0
    if pace is None or pace == "even":
        return min(max((now - start) / (end - start), 0.0), 1.0)
    moment = min(max(now, start), end)
    base = _weighted(start, pace)
    return (_weighted(moment, pace) - base) / (_weighted(end, pace) - base)


# Pacing lets a request go a little over the plan's line: without it the first request
# of a period (the line starts at 0) would be refused. A share of the total, and never
# less than the request's own cost.
PACE_ALLOWANCE = 0.01


def pace_budget(
    *, now: float, start: float, end: float, total: int, reserve: float, pace: Pace = "even"
) -> float:
    """What the plan lets a priority have spent by ``now``, the allowance included: the
    quota spread over the period from ``start`` to ``end`` (evenly, or by the hour-of-day
    weights of ``pace``), less the priority's reserve (what more urgent requests may
    always spend ahead of the plan), plus :data:`PACE_ALLOWANCE` of the total. May be
    negative early in the period."""
    share = elapsed_share(now=now, start=start, end=end, pace=pace)
    return total * (share - reserve + PACE_ALLOWANCE)


def paced(
    *,
    now: float,
    start: float,
    end: float,
    total: int,
    spent: int,
    cost: int,
    reserve: float,
    pace: Pace = "even",
) -> bool:
    """Whether spending ``cost`` more keeps ``spent`` within the plan's budget so far
    (see :func:`pace_budget`); a request no dearer than the allowance itself always fits
    an untouched budget, so the first request of a period (reserve 0) goes. Free
    requests always go."""
    budget = pace_budget(now=now, start=start, end=end, total=total, reserve=reserve, pace=pace)
    return within_budget(budget, total=total, spent=spent, cost=cost)


def within_budget(budget: float, *, total: int, spent: int, cost: int) -> bool:
    """:func:`paced` for a :func:`pace_budget` already worked out."""
    if cost <= 0:
        return True
    return spent + cost <= max(budget, budget - PACE_ALLOWANCE * total + cost)


# Too early in a period, a burn rate says little: no forecast before this share of it.
FORECAST_AFTER = 0.01


def forecast(*, now: float, start: float, end: float, total: int, spent: int) -> float | None:
    """Units left at the reset if spending goes on at the rate of the period so far
    (negative: the quota runs out before); None if too little of the period has passed."""
    share = elapsed_share(now=now, start=start, end=end)
    if share < FORECAST_AFTER:
        return None
    return total - spent / share


def runs_out(*, now: float, start: float, end: float, total: int, spent: int) -> float | None:
    """When the quota runs out at the rate of the period so far, if before ``end``."""
    share = elapsed_share(now=now, start=start, end=end)
    if share < FORECAST_AFTER or spent <= 0:
        return None
    moment = start + (now - start) * total / spent
    return moment if moment < end else None


def admits(*, available: int, total: int, cost: int, reserve: float) -> bool:
    """Whether spending ``cost`` leaves at least ``reserve`` of ``total`` untouched.

    A request that costs nothing is always admitted; none may take the quota below 0.
    """
    if cost <= 0:
        return True
    return available - cost >= max(0.0, reserve * total)


def clean_ttl(value: object) -> float | None:
    """A freshness rule's answer, or None if it is not a usable number of seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return float(value)


def max_age(headers: Mapping[str, str]) -> int | None:
    """The ``max-age`` directive of ``Cache-Control``, if any (RFC 9111 §5.2.2.1)."""
    return max_age_directive(headers.get("cache-control", ""))


def max_age_directive(cache_control: str) -> int | None:
    found = _MAX_AGE.search(cache_control)
    return delta_seconds(found.group(1)) if found else None


# The longest an answer is taken to stay fresh, whatever it says (seconds). RFC 9111
# §1.2.2 lets a cache cap delta-seconds at "the greatest positive integer it can
# conveniently represent"; a year is ours: nothing a quota-limited API answers is worth
# keeping fresh longer, and every sum made with it stays finite.
MAX_FRESHNESS = 365 * 86400


def delta_seconds(digits: str) -> int:
    """A run of ASCII digits as seconds, at most :data:`MAX_FRESHNESS`. Decided on the
    length first: ``int()`` refuses more than 4,300 digits, and ``float()`` of 400 reads
    as infinity."""
    digits = digits.lstrip("0")
    if len(digits) > len(str(MAX_FRESHNESS)):
        return MAX_FRESHNESS
    return min(int(digits or "0"), MAX_FRESHNESS)


def clamp_cache_control(cache_control: str) -> str:
    """``Cache-Control`` with a ``max-age`` beyond :data:`MAX_FRESHNESS` written as the
    ceiling, so every reader of a stored answer (hishel's own included) sees a sane one."""
    found = _MAX_AGE.search(cache_control)
    if found is None:
        return cache_control
    seconds = str(delta_seconds(found.group(1)))
    if seconds == found.group(1):
        return cache_control
    start, end = found.span(1)
    return f"{cache_control[:start]}{seconds}{cache_control[end:]}"


def staleness_allows(*, age: float, ttl: float | None, max_stale: float) -> bool:
    """Whether an answer ``age`` seconds old, fresh for ``ttl``, may be served stale.

    Like RFC 9111's ``max-stale``: what counts is how long it has been stale.
    """
    return age - (ttl or 0.0) <= max_stale


# RFC 9111 §4.2.2: without an explicit lifetime, a cache may take a fraction of the time
# since Last-Modified; 10 % is the RFC's example, and hishel caps it at a week.
HEURISTIC_FRACTION = 0.1
HEURISTIC_MAX = 7 * 86400.0


_moments: dict[str, float | None] = {}


def timestamp(value: str | None) -> float | None:
    """An HTTP-date (Date, Expires, Last-Modified, Retry-After) as a timestamp, None if
    unreadable. Remembered: answers share few Date values, and hits read them."""
    if value is None:
        return None
    try:
        return _moments[value]
    except KeyError:
        pass
    found = _parse_date(value)
    if len(_moments) >= 1024:
        _moments.clear()
    _moments[value] = found
    return found


def _parse_date(value: str) -> float | None:
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def freshness_lifetime(headers: Mapping[str, str], now: float) -> float | None:
    """How long a stored response stays fresh, as a private cache reckons it
    (RFC 9111 §4.2.1): ``max-age``, else ``Expires`` minus ``Date``, else the heuristic
    from ``Last-Modified`` (§4.2.2); None if nothing says. ``now`` stands in for a
    missing ``Date``. Never more than :data:`MAX_FRESHNESS`."""
    found = _MAX_AGE.search(headers.get("cache-control", ""))
    if found:
        return float(delta_seconds(found.group(1)))
    date = timestamp(headers.get("date"))
    date = now if date is None else date
    if "expires" in headers:
        expires = timestamp(headers.get("expires"))
        # An invalid Expires, such as "0", means already expired (RFC 9111 §5.3).
        return min(max(0.0, expires - date), MAX_FRESHNESS) if expires is not None else 0.0
    modified = timestamp(headers.get("last-modified"))
    if modified is not None and modified < date:
        return min(HEURISTIC_MAX, (date - modified) * HEURISTIC_FRACTION)
    return None


def has_validator(headers: Mapping[str, str]) -> bool:
    """Whether a conditional request can renew the response (RFC 9110 §8.8)."""
    return "etag" in headers or "last-modified" in headers


def retention(
    *, freshness: float | None, max_stale: float, revalidation_window: float, validated: bool
) -> float:
    """Seconds a stored answer is kept: while it is fresh, then for as long as something
    may still use it: the fallback (``max_stale``) or, if it carries a validator, a
    conditional request (``revalidation_window``). Past that it is dead weight."""
    keep = max(max_stale, revalidation_window if validated else 0.0)
    return (freshness or 0.0) + keep


def iso_utc(moment: float) -> str:
    """``2026-12-01T00:00:00Z``: a moment as messages and ``status`` show it."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# The last second written as an HTTP-date: answers without a Date are given one each.
_LAST_DATE: tuple[int, str] = (0, "")


def http_date(now: float) -> str:
    global _LAST_DATE
    second, text = _LAST_DATE
    if second != int(now) or not text:
        second = int(now)
        text = datetime.fromtimestamp(second, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
        _LAST_DATE = (second, text)
    return text


# A Retry-After beyond this is not worth waiting for in-process (seconds).
MAX_RETRY_AFTER = 86400.0


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (RFC 9110 §10.2.3): delay-seconds or
    an HTTP-date. Anything unreadable is None; the result is finite and >= 0."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not "²", which isdigit() accepts
        return min(float(value), MAX_RETRY_AFTER)
    moment = timestamp(value)
    if moment is None:
        return None
    seconds = moment - now
    return min(max(seconds, 0.0), MAX_RETRY_AFTER) if math.isfinite(seconds) else None


def backoff(attempt: int, base: float, cap: float, draw: float) -> float:
    """Exponential backoff with full jitter: ``draw`` in [0, 1) of min(cap, base * 2**attempt)."""
    return draw * min(cap, base * 2.0 ** min(attempt, 60))
