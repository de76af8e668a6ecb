"""classify(), read_quota() and ApiSportsFreshness: the API-Sports profile's rules, offline."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from typing import Any

import httpx
import pytest

from quotaflow import ConfigError, QuotaReading
from quotaflow_apisports import (
    HOST,
    PROFILE,
    ApiSportsFreshness,
    classify,
    make_profile,
    read_quota,
    samples,
)

#: 2025-09-04T15:33:20Z
NOW = 1_757_000_000.0
BASE = f"https://{HOST}"
MINUTE = 60
HOUR = 3600
DAY = 86400
RULE = ApiSportsFreshness()


def _body(errors: Any) -> httpx.Response:
    return httpx.Response(200, content=json.dumps({"get": "fixtures", "errors": errors}).encode())


# -- classify --


@pytest.mark.parametrize("errors", [[], {}, None, ""])
def test_empty_errors_are_ok(errors: Any) -> None:
    """An empty errors list or object is a good answer."""
    assert classify(_body(errors)) == "ok"


@pytest.mark.parametrize(
    "errors",
    [
        {
            "token": "Error/Missing application key. Go to https://www.api-football.com/documentation-v3"
        },
        {"rateLimit": "Too many requests. Your rate limit is 10 requests per minute."},
        {"date": "The Date field must contain a valid date. Example: YYYY-MM-DD."},
        ["The league field is required."],
        [
            {
                "bug": "This is on our side, please report us this bug on https://dashboard.api-football.com"
            }
        ],
        "unexpected",
    ],
)
def test_non_empty_errors_are_errors(errors: Any) -> None:
    """Errors in a 200 (object, list or other) make an error, including the per-minute one."""
    assert classify(_body(errors)) == "error"


@pytest.mark.parametrize(
    "errors",
    [
        {"requests": samples.DAILY_LIMIT_MESSAGE},
        {"Requests": "anything"},
        ["You have reached the request limit for the day."],
        [{"plan": "Daily limit reached for your plan."}],
        {"access": "Your requests limit has been reached."},
    ],
)
def test_daily_limit_is_quota_exhausted(errors: Any) -> None:
    """A ``requests`` key, or a message about the request limit, means the quota is spent."""
    assert classify(_body(errors)) == "quota_exhausted"


@pytest.mark.parametrize(
    "content",
    [b"", b"<html>502</html>", b'"errors"', b"[1, 2]", b'{"response": []}', b'{"errors": ['],
    ids=["empty", "html", "string", "list", "no-errors", "truncated"],
)
def test_other_bodies_are_left_to_the_status(content: bytes) -> None:
    """A body that is not an envelope with errors is "ok": the status decides."""
    assert classify(httpx.Response(200, content=content)) == "ok"


def test_errors_count_whatever_the_status() -> None:
    """Errors in a 4xx envelope are errors too."""
    assert classify(samples.error_response("fixtures", {"token": "bad"})) == "error"
    response = httpx.Response(403, content=samples.envelope("status", [], errors={"x": "y"}))
    assert classify(response) == "error"


# -- read_quota --


def test_reads_the_daily_headers() -> None:
    """x-ratelimit-requests-limit is the quota's size, -remaining what is left."""
    response = samples.response(b"{}", remaining=73, limit=7500)
    assert read_quota(response) == QuotaReading(remaining=73, limit=7500)


@pytest.mark.parametrize("bad", ["", "abc", "NaN", "1e999"])
def test_malformed_headers_read_as_unknown(bad: str) -> None:
    """Values that are not numbers read as None, the other one still reads."""
    headers = {"x-ratelimit-requests-limit": bad, "x-ratelimit-requests-remaining": "5"}
    assert read_quota(httpx.Response(200, headers=headers)) == QuotaReading(remaining=5)


def test_per_minute_headers_are_not_the_quota() -> None:
    """X-RateLimit-Limit/-Remaining (per minute) are not read as the daily quota."""
    headers = {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "3"}
    assert read_quota(httpx.Response(200, headers=headers)) == QuotaReading()


# -- profile --


def test_profile_settings() -> None:
    """Daily quota of 100, 10 a minute, the key header secret, published as a plugin."""
    assert PROFILE.name == "apisports"
    assert PROFILE.hosts == (HOST,)
    assert PROFILE.quota is not None
    assert (PROFILE.quota.limit, PROFILE.quota.period) == (100, "day")
    assert [(rate.limit, rate.per) for rate in PROFILE.rates] == [(10, 60.0)]
    assert "x-apisports-key" in PROFILE.secret_headers
    assert PROFILE.classify is classify
    [found] = [ep for ep in entry_points(group="quotaflow.plugins") if ep.name == "apisports"]
    assert found.load() is PROFILE


def test_make_profile_for_another_api() -> None:
    """Each API-Sports API gets its own profile, quota and rate."""
    basketball = make_profile(
        "v1.basketball.api-sports.io", name="apisports-basketball", daily=7500, per_minute=300
    )
    assert basketball.matches(httpx.URL("https://v1.basketball.api-sports.io/games"))
    assert not basketball.matches(httpx.URL(BASE + "/fixtures"))
    assert basketball.quota is not None
    assert basketball.quota.limit == 7500
    assert basketball.rates[0].limit == 300
    with pytest.raises(ConfigError, match="limit"):
        make_profile(daily=0)


# -- freshness --


def _ttl(path: str, body: bytes = b"{}", now: float = NOW, **params: str) -> float | None:
    request = httpx.Request("GET", BASE + path, params=params)
    return RULE(request, httpx.Response(200, content=body, request=request), now)


def _fixtures(*games: tuple[float, str]) -> bytes:
    """A /fixtures body of games (kick-off offset from NOW, status)."""
    return samples.envelope(
        "fixtures",
        [
            samples.fixture(1000 + n, NOW + offset, status)
            for n, (offset, status) in enumerate(games)
        ],
    )


@pytest.mark.parametrize("status", ["1H", "HT", "2H", "ET", "P", "SUSP", "LIVE"])
def test_fixture_in_play_is_live(status: str) -> None:
    """Any fixture in play: 15 s."""
    assert _ttl("/fixtures", _fixtures((-DAY, "FT"), (-HOUR, status), (DAY, "NS"))) == 15


def test_live_query_is_live_even_when_empty() -> None:
    """``live=all`` asks for what is in play now: 15 s, empty or not."""
    assert _ttl("/fixtures", samples.envelope("fixtures", []), live="all") == 15


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (40 * MINUTE, 5 * MINUTE),
        (200, 200),  # never past the kick-off
        (5, 15),  # ...but never under the live ttl
        (23 * HOUR, 5 * MINUTE),
        (DAY, HOUR),
        (10 * DAY, HOUR),
        (0, 15),  # kick-off now, not started yet
        (-2 * HOUR, 15),
        (-7 * HOUR, 5 * MINUTE),  # long past and never started: not live any more
    ],
)
def test_next_kick_off_decides(offset: float, expected: float) -> None:
    """Fixtures to come: by the nearest kick-off of those not settled."""
    assert _ttl("/fixtures", _fixtures((offset, "NS"), (-DAY, "FT"), (20 * DAY, "TBD"))) == expected


@pytest.mark.parametrize("statuses", [["FT"], ["FT", "AET", "PEN"], ["PST", "CANC", "FT", "AWD"]])
def test_all_settled_is_kept_a_day(statuses: list[str]) -> None:
    """Finished (or postponed, cancelled, awarded) fixtures change no more: 1 day."""
    assert _ttl("/fixtures", _fixtures(*[(-DAY, s) for s in statuses])) == DAY


@pytest.mark.parametrize(
    ("date", "expected"),
    [("2025-09-03", DAY), ("2025-09-04", 5 * MINUTE), ("2025-09-05", 5 * MINUTE), ("junk", 300)],
)
def test_no_fixture_follows_the_date(date: str, expected: float) -> None:
    """An empty answer: a past date stays empty, today or later may fill up."""
    assert _ttl("/fixtures", samples.envelope("fixtures", []), date=date) == expected
    assert _ttl("/fixtures", samples.envelope("fixtures", [])) == 5 * MINUTE


def test_date_string_used_when_no_timestamp() -> None:
    """Without ``timestamp`` the fixture's ISO ``date`` is read."""
    item = samples.fixture(1, NOW + 2 * HOUR)
    del item["fixture"]["timestamp"]
    body = samples.envelope("fixtures", [item])
    assert _ttl("/fixtures", body) == 5 * MINUTE
    assert _ttl("/fixtures/headtohead", body, h2h="33-34") == 5 * MINUTE


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"errors": []}',
        b'{"response": {}}',
        b'{"response": [1]}',
        b'{"response": [{"fixture": {"id": 1}}]}',
        b'{"response": [{"fixture": {"status": {"short": "NS"}}}]}',
        b'{"response": [{"fixture": {"date": "soon", "status": {"short": "NS"}}}]}',
    ],
)
def test_unreadable_fixtures_raise_value_error(body: bytes) -> None:
    """A /fixtures body of another shape raises ValueError: quotaflow uses default_ttl."""
    with pytest.raises(ValueError):  # noqa: PT011 - the core catches any ValueError
        _ttl("/fixtures", body)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/fixtures/events", MINUTE),
        ("/fixtures/lineups", MINUTE),
        ("/fixtures/statistics", MINUTE),
        ("/fixtures/players", MINUTE),
        ("/odds/live", 15),
        ("/odds/live/bets", 15),
        ("/leagues", DAY),
        ("/leagues/seasons", DAY),
        ("/teams", DAY),
        ("/venues", DAY),
        ("/countries", DAY),
        ("/timezone", DAY),
        ("/standings", HOUR),
        ("/predictions", HOUR),
        ("/odds", HOUR),
        ("/", HOUR),
        ("/status", None),
    ],
)
def test_other_endpoints(path: str, expected: float | None) -> None:
    """Details 1 min, live odds 15 s, reference data 1 day, /status by its headers, else 1 h."""
    assert _ttl(path) == expected
