"""Property-based: the parsers never raise, and give None or non-negative integers."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import httpx
from hypothesis import example, given
from hypothesis import strategies as st

from quotaflow import QuotaReading
from quotaflow_ratelimit_headers import (
    Limit,
    Policy,
    RateLimitHeaders,
    parse_count,
    parse_policy,
    parse_ratelimit,
    parse_reset,
)

NOW = 1_757_000_000.0

# Text shaped like the fields, so that the parsers' deeper paths are reached too.
pieces = st.sampled_from(
    ['"', "\\", ",", ";", "=", " ", "q", "w", "r", "t", "-", ".", "ms", "s", "daily", "1", "0"]
)
fieldish = st.lists(st.one_of(pieces, st.integers(-(10**20), 10**20).map(str)), max_size=20).map(
    "".join
)
anything = st.one_of(st.text(), fieldish)
# Header values httpx accepts: printable latin-1 without line breaks.
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
    max_size=60,
)
nows = st.one_of(st.floats(), st.integers(-(10**12), 10**12), st.just(NOW))


def _count(value: Any) -> bool:
    """None, or a non-negative int (not a bool, not a float, never NaN)."""
    return value is None or (type(value) is int and value >= 0)


@given(anything)
@example('"a";q=1;w=1, "b";q=2')
@example("100;w=60")
def test_parse_policy_never_raises(value: str) -> None:
    """Any text: None, or policies whose numbers are non-negative integers."""
    result = parse_policy(value)
    assert result is None or (isinstance(result, tuple) and result)
    for policy in result or ():
        assert isinstance(policy, Policy)
        assert isinstance(policy.name, str)
        assert policy.quota is not None
        assert _count(policy.quota)
        assert _count(policy.window)


@given(anything)
@example("limit=1, remaining=2, reset=3")
@example('"a";r=1;t=1.5')
def test_parse_ratelimit_never_raises(value: str) -> None:
    """Any text: None, or limits whose numbers are non-negative integers."""
    result = parse_ratelimit(value)
    assert result is None or (isinstance(result, tuple) and result)
    for limit in result or ():
        assert isinstance(limit, Limit)
        assert isinstance(limit.name, str)
        assert limit.remaining is not None
        assert _count(limit.remaining)
        assert _count(limit.reset)


@given(anything)
def test_parse_count_never_raises(value: str) -> None:
    """Any text: None or a non-negative integer."""
    assert _count(parse_count(value))


@given(anything, nows, st.sampled_from(["s", "ms"]))
@example("Thu, 04 Sep 2025 15:35:00 GMT", NOW, "s")
@example("9999-12-31T23:59:59+14:00", -1e308, "s")
@example("999999999999999", 1e308, "s")
def test_parse_reset_never_raises(value: str, now: float, unit: Any) -> None:
    """Any text, any clock: None or a non-negative integer, never NaN."""
    assert _count(parse_reset(value, now, unit=unit))


@given(st.integers(0, 10**15 - 1))
def test_parse_count_reads_back_what_it_is_given(number: int) -> None:
    """Any integer of at most 15 digits reads back, bare or with a policy after it."""
    assert parse_count(str(number)) == number
    assert parse_count(f"{number}, {number};w=60") == number


@given(
    st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0x7E, blacklist_characters='"\\'),
        max_size=12,
    ),
    st.integers(0, 10**15 - 1),
    st.integers(0, 10**15 - 1),
)
def test_structured_fields_round_trip(name: str, quota: int, seconds: int) -> None:
    """A well-formed member reads back as written."""
    assert parse_policy(f'"{name}";q={quota};w={seconds}') == (Policy(name, quota, seconds),)
    assert parse_ratelimit(f'"{name}";r={quota};t={seconds}') == (Limit(name, quota, seconds),)


@given(st.integers(0, 10**9 - 1))  # from 10**9 on, numbers are epoch seconds
def test_reset_seconds_round_trip(seconds: int) -> None:
    """Seconds to wait read back as themselves."""
    assert parse_reset(str(seconds), NOW) == seconds


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1)))
def test_reset_http_date_round_trip(moment: datetime) -> None:
    """An HTTP date reads as the whole seconds until it, 0 once past."""
    moment = moment.replace(microsecond=0, tzinfo=UTC)
    text = moment.strftime("%a, %d %b %Y %H:%M:%S GMT")
    expected = max(0, math.ceil(moment.timestamp() - NOW))
    assert parse_reset(text, NOW) == expected


@given(header_text, header_text, header_text, header_text, header_text, header_text)
def test_reading_headers_never_raises(
    policy: str, ratelimit: str, limit: str, remaining: str, x_limit: str, x_remaining: str
) -> None:
    """Any header values: a QuotaReading of None or non-negative integers."""
    headers = [
        (name, value.encode("latin-1"))
        for name, value in (
            ("RateLimit-Policy", policy),
            ("RateLimit", ratelimit),
            ("RateLimit-Limit", limit),
            ("RateLimit-Remaining", remaining),
            ("X-RateLimit-Limit", x_limit),
            ("X-RateLimit-Remaining", x_remaining),
        )
    ]
    for period in ("day", "month"):
        reading = RateLimitHeaders(period)(httpx.Response(200, headers=headers))
        assert isinstance(reading, QuotaReading)
        assert _count(reading.remaining)
        assert _count(reading.limit)
        assert reading.used is None
        assert reading.last is None
