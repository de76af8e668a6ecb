"""Bad input from upstream never raises out of quotaflow and never yields a wild number."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import quotaflow
from quotaflow import Quota, QuotaHeaders
from quotaflow._policy import backoff, clean_ttl, max_age, period_start, retry_after
from quotaflow._secrets import cache_url, redact_url

from .conftest import BASE, api_profile, info

# Header values httpx accepts: printable latin-1 without line breaks.
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
    max_size=60,
)
NOW = datetime(2026, 11, 29, 12, tzinfo=UTC).timestamp()
# The same examples on every run and machine, and no replay of an old failure from
# .hypothesis/: a failure here is a failure of the code, found again by the next run.
deterministic = settings(derandomize=True, database=None)


@deterministic
@given(remaining=header_text, used=header_text, last=header_text, limit=header_text)
def test_quota_headers_read_numbers_or_nothing(remaining, used, last, limit) -> None:
    """Any header text reads as an integer within 2**53, or as unknown."""
    headers = [
        (k, v.encode("latin-1"))
        for k, v in zip("rult", (remaining, used, last, limit), strict=True)
    ]
    reading = QuotaHeaders(remaining="r", used="u", last="l", limit="t")(
        httpx.Response(200, headers=headers)
    )
    for value in (reading.remaining, reading.used, reading.last, reading.limit):
        assert value is None or (isinstance(value, int) and abs(value) <= 2**53)


@deterministic
@given(header_text)
def test_retry_after_is_finite_and_not_negative(value: str) -> None:
    """Retry-After: seconds or an HTTP date; anything else is None."""
    seconds = retry_after(value, NOW)
    assert seconds is None or (math.isfinite(seconds) and 0 <= seconds <= 86400)


@deterministic
@given(st.datetimes(timezones=st.just(UTC)))
def test_retry_after_dates_round_trip(moment: datetime) -> None:
    """An HTTP date in the future waits until then (capped at a day), in the past not at all."""
    text = moment.strftime("%a, %d %b %Y %H:%M:%S GMT")
    seconds = retry_after(text, NOW)
    if moment.year < 1900:
        return  # email.utils only reads four-digit years from 1900 on
    assert seconds is not None
    expected = min(max(int(moment.timestamp()) - NOW, 0), 86400)
    assert seconds == pytest.approx(expected, abs=1)


@deterministic
@given(
    st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(), st.none())
)
def test_ttl_answers_are_clean(value: object) -> None:
    """A rule's answer is used only as a finite, non-negative number."""
    ttl = clean_ttl(value)
    assert ttl is None or (math.isfinite(ttl) and ttl >= 0)


@deterministic
@given(header_text)
def test_max_age_parses_or_declines(value: str) -> None:
    """Cache-Control max-age is a non-negative integer or absent."""
    found = max_age(httpx.Headers([(b"cache-control", value.encode("latin-1"))]))
    assert found is None or found >= 0


@deterministic
@given(
    st.integers(min_value=0, max_value=60),
    st.floats(min_value=0.001, max_value=100),
    st.floats(min_value=0.001, max_value=1000),
    st.floats(min_value=0, max_value=0.999999),
)
def test_backoff_is_bounded(attempt: int, base: float, cap: float, draw: float) -> None:
    """Full jitter never exceeds the cap nor goes negative."""
    delay = backoff(attempt, base, cap, draw)
    assert 0 <= delay <= cap


@deterministic
@given(
    st.floats(min_value=0, max_value=4e9),
    st.sampled_from(["day", "month"]),
    st.integers(min_value=1, max_value=31),
)
def test_period_start_is_never_after_now(now: float, period: str, day: int) -> None:
    """The current quota period starts at or before now, at most a month back."""
    start = period_start(Quota(10, period=period, reset_day=day), now)  # type: ignore[arg-type]
    assert now - 31 * 86400 - 1 <= start <= now


@deterministic
@given(st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=6))
def test_secret_parameters_never_survive_redaction(params) -> None:
    """Whatever the query, the secret's value is gone from the cache URL and the log URL."""
    url = httpx.URL(BASE + "/x", params=[*params, ("apiKey", "S3CR3T-VALUE")])
    assert "S3CR3T-VALUE" not in str(cache_url(url, {"apiKey"}))
    assert "S3CR3T-VALUE" not in str(redact_url(url, {"apiKey"}))


bodies = st.one_of(
    st.binary(max_size=300),
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    ).map(lambda value: json.dumps(value).encode()),
)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    body=bodies,
    quota=st.dictionaries(st.sampled_from(["x-remaining", "x-used", "x-cost"]), header_text),
)
# The API itself says nothing is left: x-requests-remaining: 0 (issue 13, item 19).
@example(body=b"[]", quota={"x-used": "0"})
@example(body=b"{}", quota={"x-remaining": "0", "x-used": "0"})
def test_any_answer_goes_through_the_stack(tmp_path_factory, body: bytes, quota) -> None:
    """Odds API profile and a strict test profile: any body, any quota headers, no exception
    but the documented one: QuotaExhausted once the API's own numbers leave less than the
    request's cost, which refuses even a CRITICAL request (its reserve is 0, not less)."""
    from quotaflow_theoddsapi import PROFILE

    headers = [(k.encode(), v.encode("latin-1")) for k, v in quota.items()]
    headers.append((b"x-requests-remaining", quota.get("x-used", "").encode("latin-1")))

    def upstream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers=headers)

    state = tmp_path_factory.mktemp("fuzz")
    with quotaflow.make_client(
        profiles=[PROFILE, api_profile(freshness=PROFILE.freshness)],
        plugins=False,
        state_dir=state,
        transport=httpx.MockTransport(upstream),
    ) as client:
        for url in (
            "https://api.the-odds-api.com/v4/sports/nfl/odds?regions=us",
            "https://api.the-odds-api.com/v4/sports/nfl/scores",
            f"{BASE}/v4/sports/nfl/odds",
        ):
            try:
                response = client.get(url, extensions={"priority": "critical"})
            except quotaflow.QuotaExhausted as exc:
                refused = exc
            else:
                refused = None
            if refused is not None:
                assert refused.remaining is not None
                assert refused.remaining < refused.cost
                continue
            found = info(response)
            assert response.content == body
            assert found.ttl is None or (math.isfinite(found.ttl) and found.ttl >= 0)
            assert found.cost >= 0


def test_every_property_test_is_deterministic() -> None:
    """The profile tests/conftest.py loads: the same examples every run, no saved database,
    whatever a test's own ``@settings`` say about the number of examples."""
    from hypothesis import settings as current

    assert current.default.derandomize is True
    assert current.default.database is None
