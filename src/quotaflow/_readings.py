"""Rates, quotas and what a response says of them. Strictly private."""

from __future__ import annotations

import math
from typing import Literal

import attrs
import httpx

from ._fields import _checked, _within_limit, duration


@attrs.frozen
class Rate:
    """A short-window rate: never more than ``limit`` requests in any ``per`` seconds,
    at most ``burst`` at once.

    The window slides: *any* span of ``per`` seconds holds at most ``limit``
    requests, so every calendar window (each second, each minute) holds too. After an
    idle spell ``burst`` requests go at once; the next waits until the oldest leaves
    the window. ``burst`` defaults to ``limit``. A smaller one smooths the flow: a
    token bucket of ``burst`` tokens refilling at ``limit / per`` applies as well, so
    ``Rate(30, per=1.0, burst=5)`` sends 5 at once, then one every 1/30 s, and still
    never 31 in a second. Saturated, either form sends ``limit`` per ``per`` (a
    request counts for ``per`` seconds plus one millisecond, the limiter's resolution;
    above 64 requests per window, plus up to ``per / 64``).

    A request that does not fit waits (up to its priority's max wait) rather than
    being refused. All processes and machines sharing the state (its SQLite file, or
    Redis) share the window.

    Args:
        limit: requests in any ``per`` seconds (> 0).
        per: the window (> 0): seconds, or ``"1s"``, ``"1m"``, ``"1h"``, ``"1d"``.
        burst: requests at once, ``1 <= burst <= limit``; None: ``limit``.

    Raises:
        quotaflow.ConfigError: a value is invalid; the message names it.

    .. versionadded:: 0.1
    """

    limit: int = attrs.field(
        validator=_checked(attrs.validators.instance_of(int), attrs.validators.gt(0))
    )
    per: float = attrs.field(
        default=1.0, converter=duration, validator=_checked(attrs.validators.gt(0))
    )
    burst: int | None = attrs.field(
        default=None,
        validator=_checked(
            attrs.validators.optional([attrs.validators.instance_of(int), attrs.validators.gt(0)]),
            _within_limit,
        ),
    )


@attrs.frozen
class Quota:
    """A long-window quota: ``limit`` units per ``period`` (``"day"`` or ``"month"``, UTC).

    ``limit`` is the assumption until the API's own headers say otherwise;
    monthly periods start on ``reset_day`` (the billing day, clamped to the month).

    .. versionadded:: 0.1
    """

    limit: int = attrs.field(
        validator=_checked(attrs.validators.instance_of(int), attrs.validators.gt(0))
    )
    period: Literal["day", "month"] = attrs.field(
        default="month", validator=_checked(attrs.validators.in_(("day", "month")))
    )
    reset_day: int = attrs.field(
        default=1,
        validator=_checked(
            attrs.validators.instance_of(int), attrs.validators.ge(1), attrs.validators.le(31)
        ),
    )


@attrs.frozen
class QuotaReading:
    """What a response says of the quota. Any field may be unknown (``None``).

    Attributes:
        remaining: units left this period.
        used: units used this period (cumulative).
        last: what this very call cost.
        limit: the size of the quota this period, where the API says it.
    """

    remaining: int | None = None
    used: int | None = None
    last: int | None = None
    limit: int | None = None


def _number_header(headers: httpx.Headers, name: str | None) -> float | None:
    """A finite number from header ``name``; bad upstream data reads as unknown (None),
    never as a crash or a wild number."""
    if name is None:
        return None
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _int_header(headers: httpx.Headers, name: str | None) -> int | None:
    value = _number_header(headers, name)
    return int(value) if value is not None and abs(value) <= 2**53 else None


@attrs.frozen
class QuotaHeaders:
    """Reads a :class:`QuotaReading` from response headers named here.

    Values that are missing or not numbers read as unknown.

    .. versionadded:: 0.1
    """

    remaining: str | None = None
    used: str | None = None
    last: str | None = None
    limit: str | None = None

    def __call__(self, response: httpx.Response) -> QuotaReading:
        headers = response.headers
        return QuotaReading(
            remaining=_int_header(headers, self.remaining),
            used=_int_header(headers, self.used),
            last=_int_header(headers, self.last),
            limit=_int_header(headers, self.limit),
        )


@attrs.frozen
class WindowReading:
    """What a response says of the API's short window. Any field may be unknown (``None``).

    When ``remaining`` is 0 (or less) the profile holds off until the window resets,
    in every process on its state: ``reset`` seconds from now if known, else the
    ``per`` of the profile's shortest rate (of those whose ``limit`` is ``limit``,
    if any is).

    Attributes:
        remaining: requests left in the current window.
        reset: when the window starts again: seconds from now, or the moment itself
            in epoch seconds (any value from 10**9 on; a moment already past means
            the window has started again).
        limit: the window's size in requests, where the API says it.

    .. versionadded:: 0.1
    """

    remaining: int | None = None
    reset: float | None = None
    limit: int | None = None


def _seconds_header(headers: httpx.Headers, name: str | None) -> float | None:
    value = _number_header(headers, name)
    return value if value is not None and value >= 0 else None


@attrs.frozen
class WindowHeaders:
    """Reads a :class:`WindowReading` from response headers named here.

    Values that are missing or not numbers (a negative reset included) read as
    unknown; ``reset`` is read as seconds, or epoch seconds (see :class:`WindowReading`).

    Example: ``WindowHeaders(remaining="x-ratelimit-remaining", reset="x-ratelimit-reset")``.

    .. versionadded:: 0.1
    """

    remaining: str | None = None
    reset: str | None = None
    limit: str | None = None

    def __call__(self, response: httpx.Response) -> WindowReading:
        headers = response.headers
        return WindowReading(
            remaining=_int_header(headers, self.remaining),
            reset=_seconds_header(headers, self.reset),
            limit=_int_header(headers, self.limit),
        )
