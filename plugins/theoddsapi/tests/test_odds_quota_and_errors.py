"""read_quota() and classify(): what an answer says of the quota and of errors."""

from __future__ import annotations

import httpx
import pytest

from quotaflow import QuotaReading
from quotaflow_theoddsapi import PROFILE, classify, read_quota, samples


def _answer(body: bytes = b"[]", status: int = 200, **headers: str) -> httpx.Response:
    names = {key.replace("_", "-"): value for key, value in headers.items()}
    return httpx.Response(status, content=body, headers=names)


def test_reads_the_three_headers() -> None:
    """x-requests-remaining, -used and -last read as integers."""
    response = samples.response(samples.sports(), used=123, remaining=377, last=3)
    assert read_quota(response) == QuotaReading(remaining=377, used=123, last=3)


def test_reads_negative_and_spaced_values() -> None:
    """A negative remaining (unverified but possible) and padded values still read."""
    response = _answer(
        b"{}", x_requests_remaining="-4", x_requests_used=" 504 ", x_requests_last="2"
    )
    assert read_quota(response) == QuotaReading(remaining=-4, used=504, last=2)


def test_header_names_are_case_insensitive() -> None:
    """Headers sent in another case read the same."""
    response = httpx.Response(
        200,
        content=b"{}",
        headers={"X-Requests-Remaining": "9", "X-Requests-Used": "491", "X-Requests-Last": "1"},
    )
    assert read_quota(response) == QuotaReading(remaining=9, used=491, last=1)


@pytest.mark.parametrize("bad", ["abc", "", "1e999", "-1e999", "NaN", "inf", "12abc", "0x10"])
def test_malformed_values_read_as_none(bad: str) -> None:
    """A value that is not a finite number reads as unknown, without raising."""
    response = _answer(b"{}", x_requests_remaining=bad, x_requests_used=bad, x_requests_last=bad)
    assert read_quota(response) == QuotaReading(remaining=None, used=None, last=None)


def test_one_malformed_value_spares_the_others() -> None:
    """A bad header only makes its own field unknown."""
    response = _answer(b"{}", x_requests_remaining="abc", x_requests_used="10", x_requests_last="1")
    assert read_quota(response) == QuotaReading(remaining=None, used=10, last=1)


def test_no_headers_read_as_none() -> None:
    """An answer without the headers says nothing of the quota."""
    assert read_quota(_answer(b"{}")) == QuotaReading()


@pytest.mark.parametrize("body", [b"[]", b"[]\n", b"  []  "])
def test_empty_list_without_last_costs_nothing(body: bytes) -> None:
    """An empty list (no events) with no x-requests-last reads last=0."""
    response = _answer(body, x_requests_remaining="480", x_requests_used="20")
    assert read_quota(response) == QuotaReading(remaining=480, used=20, last=0)
    assert read_quota(_answer(body)) == QuotaReading(last=0)


def test_empty_list_keeps_a_reported_last() -> None:
    """x-requests-last, when sent, wins over the empty-list rule."""
    response = _answer(b"[]", x_requests_remaining="480", x_requests_used="20", x_requests_last="3")
    assert read_quota(response).last == 3


@pytest.mark.parametrize(
    ("status", "body"),
    [(200, samples.sports()), (200, b"{}"), (404, b"[]"), (500, b"[]")],
)
def test_last_unknown_otherwise(status: int, body: bytes) -> None:
    """Without x-requests-last, a non-empty or failed answer leaves last unknown."""
    assert read_quota(_answer(body, status)).last is None


def test_profile_reads_with_this_function() -> None:
    """The profile's read_quota is this function."""
    assert PROFILE.read_quota is read_quota
    assert PROFILE.classify is classify


def test_out_of_usage_credits_is_quota_exhausted() -> None:
    """401 OUT_OF_USAGE_CREDITS means the quota is used up."""
    response = samples.error(401, "OUT_OF_USAGE_CREDITS", "Usage quota has been reached.")
    assert classify(response) == "quota_exhausted"


@pytest.mark.parametrize("code", ["INVALID_KEY", "MISSING_KEY", "DEACTIVATED_KEY"])
def test_other_401_are_ok(code: str) -> None:
    """Other 401s (a bad key) are not quota exhaustion."""
    assert classify(samples.error(401, code, "API key is not valid.")) == "ok"


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(401, content=b"Unauthorized"),
        httpx.Response(401, content=b""),
        httpx.Response(401, content=b"\xff\xfe"),
        httpx.Response(401, json=["OUT_OF_USAGE_CREDITS"]),
        httpx.Response(401, json={"error": {"error_code": "OUT_OF_USAGE_CREDITS"}}),
    ],
)
def test_unreadable_401_is_ok(response: httpx.Response) -> None:
    """A 401 whose body is not the documented JSON error is not quota exhaustion."""
    assert classify(response) == "ok"


@pytest.mark.parametrize(
    "response",
    [
        samples.response(samples.sports(), used=1, remaining=499, last=0),
        samples.error(429, "EXCEEDED_FREQ_LIMIT", "Too many requests."),
        samples.error(422, "INVALID_MARKET", "Invalid market."),
        samples.error(404, "UNKNOWN_SPORT", "Unknown sport."),
        # The code only counts on a 401 (a 200 carrying it is an error body, see below).
        samples.error(403, "OUT_OF_USAGE_CREDITS", "Usage quota has been reached."),
    ],
)
def test_other_answers_are_ok(response: httpx.Response) -> None:
    """200s and other errors are "ok" to classify (status-based handling does the rest)."""
    assert classify(response) == "ok"


@pytest.mark.parametrize(
    "body",
    [
        b'{"message": "Internal error", "error_code": "INTERNAL"}',
        b'  {"message": "Usage quota has been reached.", "error_code": "OUT_OF_USAGE_CREDITS"}',
        b'{"message": "Something went wrong"}',
    ],
)
def test_error_shaped_200_is_an_error(body: bytes) -> None:
    """A 200 whose body is the API's error object is an error: never stored."""
    assert classify(_answer(body)) == "error"


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"id": "e1", "sport_key": "nfl", "message": "a field of an event"}',
        b'{"timestamp": "2025-01-01T00:00:00Z", "data": [], "message": "x"}',
        b'{"message": "cut short',  # not JSON after all
        b"not json",
    ],
)
def test_answers_of_the_usual_shapes_are_ok(body: bytes) -> None:
    """Lists, one event, the historical wrapper and bodies that don't parse stay ok."""
    assert classify(_answer(body)) == "ok"
