"""parse_policy, parse_ratelimit, parse_count and parse_reset on values servers send."""

from __future__ import annotations

import pytest

from quotaflow_ratelimit_headers import (
    Limit,
    Policy,
    parse_count,
    parse_policy,
    parse_ratelimit,
    parse_reset,
)

#: 2025-09-04T15:33:20Z
NOW = 1_757_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"daily";q=1000;w=86400', (Policy("daily", 1000, 86400),)),
        (
            '"burst";q=100;w=60, "daily";q=1000;w=86400',
            (Policy("burst", 100, 60), Policy("daily", 1000, 86400)),
        ),
        ("default;q=50", (Policy("default", 50, None),)),
        ('"a;b,c";q=5;w=1', (Policy("a;b,c", 5, 1),)),  # separators inside a String
        ('"say \\"hi\\"";q=5', (Policy('say "hi"', 5, None),)),
        ('"daily";Q=10;W=86400', (Policy("daily", 10, 86400),)),  # keys in any case
        ('"daily";w=86400;q=7;q=9', (Policy("daily", 7, 86400),)),  # the first q wins
        ('"daily";q=1000;w=1.5', (Policy("daily", 1000, 2),)),  # a decimal window rounds up
        ("100;w=60, 1000;w=86400", (Policy("100", 100, 60), Policy("1000", 1000, 86400))),
        ('"ok";q=1, "bad";q=-1, "worse";w=3, x;q=abc', (Policy("ok", 1, None),)),
        ('"daily";q=1000;w=-5', (Policy("daily", 1000, None),)),
    ],
)
def test_parse_policy(value: str, expected: tuple[Policy, ...]) -> None:
    """Draft 07+ policies, earlier drafts' bare quotas, and bad members skipped."""
    assert parse_policy(value) == expected


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", ",,,", '"daily"', '"daily";w=60', '"open;q=1', "q=1", "1e3;w=1", '"x";q=1.5'],
)
def test_parse_policy_nothing_readable(value: str | None) -> None:
    """No member with a readable quota: None."""
    assert parse_policy(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"daily";r=50;t=30', (Limit("daily", 50, 30),)),
        ('"burst";r=0;t=1, "daily";r=50;t=30', (Limit("burst", 0, 1), Limit("daily", 50, 30))),
        ("default;r=5", (Limit("default", 5, None),)),
        ('"daily";r=50;t=0.2', (Limit("daily", 50, 1),)),
        ("limit=100, remaining=50, reset=30", (Limit("", 50, 30),)),  # drafts 03..06
        ("remaining=7", (Limit("", 7, None),)),
        ('"ok";r=3, "neg";r=-3, "nan";r=NaN, "huge";r=1234567890123456', (Limit("ok", 3, None),)),
        ('"daily";r=50;t=never', (Limit("daily", 50, None),)),
    ],
)
def test_parse_ratelimit(value: str, expected: tuple[Limit, ...]) -> None:
    """Draft 07+ members, the earlier Dictionary form, bad members skipped."""
    assert parse_ratelimit(value) == expected


@pytest.mark.parametrize("value", [None, "", '"daily";t=30', "limit=100", "remaining=-1", "r=5"])
def test_parse_ratelimit_nothing_readable(value: str | None) -> None:
    """No member with a readable remaining: None."""
    assert parse_ratelimit(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("42", 42),
        (" 42 ", 42),
        ("0", 0),
        ("100.0", 100),
        ("100, 100;w=60", 100),
        ("5000;w=3600", 5000),
        ("", None),
        ("-1", None),
        ("1e3", None),
        ("abc", None),
        ("12abc", None),
        ("4.5", None),
        ("١٢", None),  # Arabic-Indic digits are not ASCII digits
        ("1234567890123456", None),  # more than 15 digits
        (None, None),
    ],
)
def test_parse_count(value: str | None, expected: int | None) -> None:
    """A leading non-negative integer, or None."""
    assert parse_count(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30),
        ("0", 0),
        ("1.2", 2),  # rounded up: never too early
        ("1500ms", 2),
        ("1500 MS", 2),
        ("45s", 45),
        (str(int(NOW) + 90), 90),  # epoch seconds
        (str(int(NOW) - 90), 0),  # a moment past: no wait
        (str(int(NOW * 1000) + 2500), 3),  # epoch milliseconds
        ("Thu, 04 Sep 2025 15:35:00 GMT", 100),  # HTTP date
        ("Thu, 04 Sep 2025 15:00:00 GMT", 0),
        ("2025-09-04T15:34:20Z", 60),  # ISO 8601
        ("2025-09-04T17:34:20+02:00", 60),
        ("2025-09-04T15:34:20", 60),  # no offset: UTC
    ],
)
def test_parse_reset(value: str, expected: int) -> None:
    """Seconds, milliseconds, epoch seconds or milliseconds, or a date: seconds from now."""
    assert parse_reset(value, NOW) == expected


def test_parse_reset_unit_ms() -> None:
    """unit="ms" reads bare numbers to wait as milliseconds; epochs are still epochs."""
    assert parse_reset("2500", NOW, unit="ms") == 3
    assert parse_reset("2500s", NOW, unit="ms") == 2500
    assert parse_reset(str(int(NOW) + 10), NOW, unit="ms") == 10


@pytest.mark.parametrize(
    "value",
    ["", "soon", "-5", "nan", "inf", "1e3", "Thu, 99 Sep 2025 15:35:00 GMT", "12:30", "x" * 1000],
)
def test_parse_reset_unreadable(value: str) -> None:
    """Anything else: None."""
    assert parse_reset(value, NOW) is None


@pytest.mark.parametrize("now", [float("nan"), float("inf"), float("-inf")])
def test_parse_reset_needs_a_finite_now(now: float) -> None:
    """A clock that is not a number gives None, not NaN."""
    assert parse_reset("30", now) is None
