"""OddsApiFreshness: how long each answer of The Odds API stays fresh."""

from __future__ import annotations

import json
from typing import Any

import attrs
import httpx
import pytest

from quotaflow_theoddsapi import PROFILE, OddsApiFreshness, samples

NOW = 1_757_000_000.0
BASE = "https://api.the-odds-api.com"
SPORT = "americanfootball_nfl"
NFL = f"/v4/sports/{SPORT}"
EVENT_ID = "e912304de2b2ce35b473ce2ecd3d1502"
EVENT = f"{NFL}/events/{EVENT_ID}"
HOUR = 3600
DAY = 86400
RULE = OddsApiFreshness()


def _ttl(path: str, body: bytes, rule: Any = RULE, now: float = NOW) -> float | None:
    request = httpx.Request("GET", BASE + path, params={"regions": "us", "apiKey": "SECRET"})
    response = httpx.Response(200, content=body, request=request)
    result: float | None = rule(request, response, now)
    return result


def _odds(*offsets: float) -> bytes:
    """An /odds body whose games kick off ``offsets`` seconds from NOW."""
    events = [
        samples.event(SPORT, f"Home {n}", f"Away {n}", NOW + o) for n, o in enumerate(offsets)
    ]
    return samples.odds(events)


def _scores(*games: tuple[float, bool]) -> bytes:
    """A /scores body of games (kick-off offset from NOW, completed)."""
    return json.dumps(
        [
            samples.score(SPORT, f"Home {n}", f"Away {n}", NOW + o, now=NOW, completed=done)
            for n, (o, done) in enumerate(games)
        ]
    ).encode()


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (-3 * HOUR, 40),  # in play
        (-1, 40),
        (0, 40),  # kick-off is now: started
        (1, 60),
        (HOUR - 1, 60),
        (HOUR, 120),  # exactly one hour out is not "under 1h"
        (6 * HOUR - 1, 120),
        (6 * HOUR, 300),
        (DAY - 1, 300),
        (DAY, 900),
        (7 * DAY, 900),
    ],
)
def test_odds_follow_the_kick_off(offset: float, expected: float) -> None:
    """/odds freshness shrinks as the nearest kick-off approaches, on both sides of each limit."""
    assert _ttl(NFL + "/odds", _odds(offset)) == expected


@pytest.mark.parametrize(
    ("offsets", "expected"),
    [
        ((3 * DAY, 30 * 60, 2 * HOUR), 60),
        ((2 * HOUR, -10 * 60, 3 * DAY), 40),
        ((5 * DAY, 12 * HOUR), 300),
        ((2 * DAY, 3 * DAY), 900),
    ],
)
def test_odds_nearest_kick_off_decides(offsets: tuple[float, ...], expected: float) -> None:
    """Among several games, the nearest kick-off decides, whatever the order."""
    assert _ttl(NFL + "/odds", _odds(*offsets)) == expected
    assert _ttl(NFL + "/odds", _odds(*reversed(offsets))) == expected


def test_odds_with_no_events() -> None:
    """An empty /odds list (out of season) stays fresh 900 s."""
    assert _ttl(NFL + "/odds", b"[]") == 900


def test_odds_path_with_trailing_slash() -> None:
    """A trailing slash does not change the rule for /odds."""
    assert _ttl(NFL + "/odds/", _odds(30 * 60)) == 60


@pytest.mark.parametrize(
    ("offset", "expected"),
    [(-60, 40), (0, 40), (1, 60), (HOUR, 120), (6 * HOUR, 300), (DAY, 900)],
)
def test_event_odds_single_object(offset: float, expected: float) -> None:
    """Event odds come as one object, and follow its kick-off."""
    body = json.dumps(samples.event(SPORT, "Home", "Away", NOW + offset)).encode()
    assert _ttl(EVENT + "/odds", body) == expected


@pytest.mark.parametrize(
    ("games", "expected"),
    [
        (((-HOUR, False),), 30),
        (((0, False),), 30),  # kicked off right now
        (((-DAY, True), (-HOUR, False), (HOUR, False)), 30),
        (((-DAY, True),), 86400),
        (((-DAY, True), (-2 * DAY, True)), 86400),
        (((1, False),), 600),
        (((HOUR, False), (DAY, False)), 600),
        (((-DAY, True), (HOUR, False)), 600),
        ((), 600),
    ],
)
def test_scores(games: tuple[tuple[float, bool], ...], expected: float) -> None:
    """/scores: 30 s with a game live, a day once all are over, else 10 minutes."""
    assert _ttl(NFL + "/scores", _scores(*games)) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/v4/sports",
        "/v4/sports/",
        NFL + "/events",
        NFL + "/participants",
    ],
)
def test_listings(path: str) -> None:
    """Sports, events and participants change rarely: six hours."""
    assert _ttl(path, samples.sports()) == 21600


def test_markets() -> None:
    """An event's market list stays fresh five minutes."""
    assert _ttl(EVENT + "/markets", b'{"id": "x", "bookmakers": []}') == 300


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"/v4/historical/sports/{SPORT}/odds", _odds(-DAY)),
        (f"/v4/historical/sports/{SPORT}/events", b"[]"),
        (f"/v4/historical/sports/{SPORT}/events/{EVENT_ID}/odds", b"not json"),
        ("/v4/historical/anything", b""),
    ],
)
def test_historical(path: str, body: bytes) -> None:
    """Historical snapshots never change: 30 days, whatever the body."""
    assert _ttl(path, body) == 30 * DAY


def test_historical_wrapper() -> None:
    """A historical answer in its wrapper is fresh 30 days."""
    body = json.dumps(
        {
            "timestamp": samples.iso(NOW - DAY),
            "previous_timestamp": samples.iso(NOW - DAY - 300),
            "next_timestamp": samples.iso(NOW - DAY + 300),
            "data": [samples.event(SPORT, "Home", "Away", NOW - DAY + HOUR)],
        }
    ).encode()
    assert _ttl(f"/v4/historical/sports/{SPORT}/odds", body) == 30 * DAY


@pytest.mark.parametrize("path", ["/v4/unknown", NFL, EVENT])
def test_unknown_path_defers_to_headers(path: str) -> None:
    """A path the rule does not know returns None (HTTP caching headers decide)."""
    assert _ttl(path, b"[]") is None


_GOOD_EVENT = samples.event(SPORT, "Home", "Away", NOW + HOUR)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (NFL + "/odds", b"not json"),
        (NFL + "/odds", b""),
        (NFL + "/odds", b"\xff\xfe"),
        (NFL + "/odds", b'"a string"'),
        (NFL + "/odds", b"null"),
        (NFL + "/odds", b"42"),
        (NFL + "/odds", b"[1, 2]"),
        (NFL + "/odds", b'[{"id": "x"}]'),
        (NFL + "/odds", b'{"message": "x", "error_code": "Y"}'),
        (NFL + "/odds", json.dumps([{**_GOOD_EVENT, "commence_time": "tomorrow"}]).encode()),
        (NFL + "/odds", json.dumps([{**_GOOD_EVENT, "commence_time": ""}]).encode()),
        (NFL + "/odds", json.dumps([{**_GOOD_EVENT, "commence_time": None}]).encode()),
        (NFL + "/odds", json.dumps([{**_GOOD_EVENT, "commence_time": ["x"]}]).encode()),
        (
            NFL + "/odds",
            json.dumps([_GOOD_EVENT, {"commence_time": "2025-13-45T00:00:00Z"}]).encode(),
        ),
        (EVENT + "/odds", b"<html>502</html>"),
        (EVENT + "/odds", json.dumps({**_GOOD_EVENT, "commence_time": "soon"}).encode()),
        (NFL + "/scores", b"not json"),
        (NFL + "/scores", b'{"scores": null}'),
        (NFL + "/scores", b'[{"completed": false}]'),
        (NFL + "/scores", b'[{"completed": false, "commence_time": "later"}]'),
        (NFL + "/scores", b'["game"]'),
    ],
)
def test_unreadable_body_raises(path: str, body: bytes) -> None:
    """A body that is not JSON, or the wrong shape, or a bad commence_time raises ValueError."""
    with pytest.raises(ValueError):  # noqa: PT011 - json.JSONDecodeError is a ValueError too
        _ttl(path, body)


def test_not_json_raises_json_decode_error() -> None:
    """A body that is not JSON raises json.JSONDecodeError, which the core catches."""
    with pytest.raises(json.JSONDecodeError):
        _ttl(NFL + "/odds", b"<html>Bad gateway</html>")


def test_profile_falls_back_to_sixty_seconds() -> None:
    """The profile uses this rule, and 60 s when the rule raises."""
    assert PROFILE.freshness == OddsApiFreshness()
    assert PROFILE.default_ttl == 60


@pytest.mark.parametrize(("path", "expected"), [(NFL + "/odds", 40), (NFL + "/scores", 30)])
def test_unix_date_format(path: str, expected: float) -> None:
    """With dateFormat=unix, integer commence_time values still give the live freshness."""
    event = {**samples.event(SPORT, "Home", "Away", NOW - HOUR), "completed": False}
    event["commence_time"] = int(NOW - HOUR)
    request = httpx.Request("GET", BASE + path, params={"regions": "us", "dateFormat": "unix"})
    response = httpx.Response(200, content=json.dumps([event]).encode(), request=request)
    assert RULE(request, response, NOW) == expected


def test_thresholds_are_settings() -> None:
    """Every threshold can be changed, by constructor or attrs.evolve."""
    live = _odds(-60)
    assert _ttl(NFL + "/odds", live) == 40
    assert _ttl(NFL + "/odds", live, OddsApiFreshness(live=10)) == 10
    assert _ttl(NFL + "/odds", _odds(HOUR - 1), attrs.evolve(RULE, within_1h=5)) == 5
    assert _ttl(NFL + "/odds", _odds(HOUR), attrs.evolve(RULE, within_6h=7)) == 7
    assert _ttl(NFL + "/odds", _odds(DAY - 1), attrs.evolve(RULE, within_24h=11)) == 11
    assert _ttl(NFL + "/odds", _odds(DAY), attrs.evolve(RULE, later=13)) == 13
    assert _ttl(NFL + "/odds", b"[]", attrs.evolve(RULE, no_events=17)) == 17
    assert _ttl(NFL + "/scores", _scores((-60, False)), OddsApiFreshness(scores_live=3)) == 3
    assert _ttl(NFL + "/scores", _scores((60, False)), OddsApiFreshness(scores_pending=4)) == 4
    assert _ttl(NFL + "/scores", _scores((-DAY, True)), OddsApiFreshness(scores_completed=5)) == 5
    assert _ttl("/v4/sports", b"[]", OddsApiFreshness(listings=6)) == 6
    assert _ttl(EVENT + "/markets", b"{}", OddsApiFreshness(markets=8)) == 8
    assert _ttl(f"/v4/historical/sports/{SPORT}/odds", b"[]", OddsApiFreshness(historical=9)) == 9
    profile = attrs.evolve(PROFILE, freshness=OddsApiFreshness(live=30))
    assert _ttl(NFL + "/odds", live, profile.freshness) == 30
    assert PROFILE.freshness == RULE  # the original is untouched


def test_now_is_the_argument_not_the_clock() -> None:
    """The rule measures the kick-off from the ``now`` it is given, not the system clock."""
    body = _odds(0)  # kicks off at NOW
    assert _ttl(NFL + "/odds", body, now=NOW - 2 * HOUR) == 120
    assert _ttl(NFL + "/odds", body, now=NOW - 2 * DAY) == 900
    assert _ttl(NFL + "/odds", body, now=NOW + 1) == 40
