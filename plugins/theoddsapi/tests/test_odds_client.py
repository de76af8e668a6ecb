"""OddsApi: the typed client, on a plain httpx.Client and on quotaflow's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import time_machine

import quotaflow
from quotaflow_theoddsapi import (
    PROFILE,
    Bookmaker,
    Event,
    EventScore,
    Market,
    OddsApi,
    OddsApiError,
    Outcome,
    Score,
    Sport,
    Usage,
    samples,
)

HOST = "api.the-odds-api.com"
BASE = f"https://{HOST}"
SPORT = "americanfootball_nfl"
ODDS = f"/v4/sports/{SPORT}/odds"
KEY = "SECRET-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
HOUR = 3600


def _at(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


@pytest.fixture
def plain(router: respx.Router) -> Iterator[OddsApi]:
    """The client on a plain httpx.Client whose transport is the mock router."""
    with httpx.Client(transport=httpx.MockTransport(router.handler)) as client:
        yield OddsApi(client, api_key=KEY)


def _params(route: respx.Route) -> dict[str, str]:
    return dict(route.calls.last.request.url.params)


def test_sports(plain: OddsApi, router: respx.Router) -> None:
    """/v4/sports parses into Sport objects; the key is sent as apiKey."""
    route = router.get(host=HOST, path="/v4/sports").mock(
        return_value=samples.response(
            samples.sports(["basketball_nba"]), used=1, remaining=499, last=0
        )
    )

    sports = plain.sports()

    assert sports == [
        Sport(
            key="basketball_nba",
            group="Basketball",
            title="NBA",
            description="US Basketball",
            active=True,
            has_outrights=False,
        )
    ]
    assert _params(route) == {"apiKey": KEY}
    plain.sports(all=True)
    assert _params(route) == {"all": "true", "apiKey": KEY}


def test_odds_parse_every_level(plain: OddsApi, router: respx.Router, start: float) -> None:
    """Events, bookmakers, markets and outcomes parse; times are aware UTC datetimes."""
    event = samples.event(
        SPORT, "Kansas City Chiefs", "Buffalo Bills", start + HOUR, markets=("h2h", "spreads")
    )
    route = router.get(host=HOST, path=ODDS).mock(
        return_value=samples.response(samples.odds([event]), used=2, remaining=498, last=2)
    )

    events = plain.odds(SPORT, markets=("h2h", "spreads"))

    assert _params(route) == {
        "regions": "us",
        "markets": "h2h,spreads",
        "oddsFormat": "decimal",
        "apiKey": KEY,
    }
    [parsed] = events
    assert isinstance(parsed, Event)
    assert parsed.id == event["id"]
    assert parsed.sport_key == SPORT
    assert parsed.sport_title == "NFL"
    assert parsed.home_team == "Kansas City Chiefs"
    assert parsed.away_team == "Buffalo Bills"
    assert parsed.commence_time == _at(start + HOUR)
    assert parsed.commence_time.tzinfo is not None
    assert len(parsed.bookmakers) == 4
    first = parsed.bookmakers[0]
    assert isinstance(first, Bookmaker)
    assert (first.key, first.title) == ("draftkings", "DraftKings")
    assert first.last_update == _at(start)
    h2h, spreads = first.markets
    assert isinstance(h2h, Market)
    assert h2h.key == "h2h"
    assert h2h.last_update == _at(start)
    raw = event["bookmakers"][0]["markets"]
    assert h2h.outcomes == tuple(
        Outcome(name=o["name"], price=o["price"], point=None) for o in raw[0]["outcomes"]
    )
    assert spreads.outcomes == tuple(
        Outcome(name=o["name"], price=o["price"], point=o["point"]) for o in raw[1]["outcomes"]
    )
    assert all(o.point is not None for o in spreads.outcomes)


def test_odds_arguments(plain: OddsApi, router: respx.Router) -> None:
    """Names join with commas, bookmakers replace the default region, times go out as ...Z."""
    route = router.get(host=HOST, path=ODDS).mock(
        return_value=samples.response(b"[]", used=0, remaining=500, last=0)
    )
    paris = timezone(timedelta(hours=2))

    plain.odds(
        SPORT,
        bookmakers=["draftkings", "fanduel"],
        markets="totals",
        odds_format="american",
        date_format="unix",
        event_ids=("a" * 32, "b" * 32),
        commence_time_from=datetime(2025, 9, 4, 20, 0, tzinfo=paris),
        commence_time_to=datetime(2025, 9, 5, 0, 0, 30, 999, tzinfo=UTC),
    )

    assert _params(route) == {
        "bookmakers": "draftkings,fanduel",
        "markets": "totals",
        "oddsFormat": "american",
        "dateFormat": "unix",
        "eventIds": f"{'a' * 32},{'b' * 32}",
        "commenceTimeFrom": "2025-09-04T18:00:00Z",
        "commenceTimeTo": "2025-09-05T00:00:30Z",
        "apiKey": KEY,
    }
    plain.odds(SPORT, regions=["us", "uk"], bookmakers="bovada")
    assert _params(route)["regions"] == "us,uk"
    assert _params(route)["bookmakers"] == "bovada"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda api: api.odds(SPORT, commence_time_from=datetime(2025, 9, 4)), "timezone-aware"),
        (lambda api: api.odds("a/b"), "sport"),
        (lambda api: api.event_odds(SPORT, ""), "event_id"),
        (lambda api: api.scores(SPORT, days_from=4), "days_from"),
        (lambda api: api.scores(SPORT, days_from=True), "days_from"),
    ],
)
def test_bad_arguments_are_refused_before_sending(
    plain: OddsApi, router: respx.Router, call: Any, message: str
) -> None:
    """A naive time, a path-breaking name or daysFrom outside 1..3 raise ValueError, unsent."""
    route = router.get(host=HOST).mock(return_value=httpx.Response(200, json=[]))
    with pytest.raises(ValueError, match=message):
        call(plain)
    assert route.call_count == 0


def test_american_prices_and_unix_times(plain: OddsApi, router: respx.Router) -> None:
    """dateFormat=unix times and integer American prices parse."""
    body = [
        {
            "id": "e" * 32,
            "sport_key": SPORT,
            "commence_time": 1_757_000_000,
            "bookmakers": [
                {
                    "key": "fanduel",
                    "title": "FanDuel",
                    "last_update": 1_756_990_000,
                    "markets": [
                        {
                            "key": "totals",
                            "last_update": 1_756_990_000,
                            "outcomes": [
                                {"name": "Over", "price": -110, "point": 47},
                                {"name": "Under", "price": 100, "point": 47.5},
                            ],
                        }
                    ],
                }
            ],
        }
    ]
    router.get(host=HOST, path=ODDS).mock(return_value=httpx.Response(200, json=body))

    [event] = plain.odds(SPORT, odds_format="american", date_format="unix")

    assert event.commence_time == _at(1_757_000_000)
    assert event.bookmakers[0].last_update == _at(1_756_990_000)
    market = event.bookmakers[0].markets[0]
    assert market.outcomes == (
        Outcome("Over", -110.0, 47.0),
        Outcome("Under", 100.0, 47.5),
    )


def test_unknown_fields_ignored_and_optional_ones_missing(
    plain: OddsApi, router: respx.Router
) -> None:
    """Extra fields are ignored; absent optional fields take their defaults."""
    body = [
        {
            "id": "f" * 32,
            "sport_key": "soccer_epl_winner",
            "commence_time": "2026-05-24T15:00:00Z",
            "home_team": None,
            "away_team": None,
            "brand_new_field": {"nested": [1, 2]},
            "bookmakers": [
                {
                    "key": "williamhill",
                    "markets": [
                        {
                            "key": "outrights",
                            "outcomes": [{"name": "Arsenal", "price": 3.5, "x": 1}],
                        }
                    ],
                    "link": "https://example.test",
                }
            ],
        },
        {"id": "0" * 32, "sport_key": SPORT, "commence_time": "2025-09-04T18:00:00"},
    ]
    router.get(host=HOST, path=ODDS).mock(return_value=httpx.Response(200, json=body))

    outright, bare = plain.odds(SPORT)

    assert outright.home_team is None
    assert outright.sport_title == ""
    assert outright.bookmakers == (
        Bookmaker(
            key="williamhill",
            title="",
            last_update=None,
            markets=(Market("outrights", (Outcome("Arsenal", 3.5),), None),),
        ),
    )
    assert bare.bookmakers == ()
    assert bare.commence_time == datetime(2025, 9, 4, 18, tzinfo=UTC)  # no offset: UTC


def test_scores(plain: OddsApi, router: respx.Router, start: float) -> None:
    """Not-started games have scores None; started ones carry Score strings; daysFrom is sent."""
    body = samples.scores(
        [
            samples.score(SPORT, "A", "B", start - HOUR, now=start, home_score=14, away_score=7),
            samples.score(SPORT, "C", "D", start + HOUR, now=start),
        ]
    )
    route = router.get(host=HOST, path=f"/v4/sports/{SPORT}/scores").mock(
        return_value=samples.response(body, used=3, remaining=497, last=2)
    )

    live, later = plain.scores(SPORT, days_from=2)

    assert _params(route) == {"daysFrom": "2", "apiKey": KEY}
    assert isinstance(live, EventScore)
    assert live.scores == (Score("A", "14"), Score("B", "7"))
    assert live.last_update == _at(start)
    assert live.completed is False
    assert later.scores is None
    assert later.last_update is None
    assert later.commence_time == _at(start + HOUR)


def test_events_and_event_odds(plain: OddsApi, router: respx.Router, start: float) -> None:
    """/events lists events without odds; /events/{id}/odds is one event object."""
    event = samples.event(SPORT, "A", "B", start + HOUR, markets=("totals",))
    listing = router.get(host=HOST, path=f"/v4/sports/{SPORT}/events").mock(
        return_value=samples.response(samples.events([event]), used=0, remaining=500, last=0)
    )
    single = router.get(host=HOST, path=f"/v4/sports/{SPORT}/events/{event['id']}/odds").mock(
        return_value=samples.response(json.dumps(event).encode(), used=1, remaining=499, last=1)
    )

    [listed] = plain.events(SPORT, commence_time_to=_at(start + 2 * HOUR))
    one = plain.event_odds(SPORT, listed.id, regions="eu", markets=["totals"])

    assert _params(listing) == {"commenceTimeTo": "2025-09-04T17:33:20Z", "apiKey": KEY}
    assert listed.bookmakers == ()
    assert _params(single) == {
        "regions": "eu",
        "markets": "totals",
        "oddsFormat": "decimal",
        "apiKey": KEY,
    }
    assert one.id == listed.id
    assert one.bookmakers[0].markets[0].outcomes[0].name == "Over"


def test_usage_follows_the_last_answer(plain: OddsApi, router: respx.Router) -> None:
    """usage is unknown at first, then the last answer's x-requests-* headers, else None."""
    route = router.get(host=HOST, path="/v4/sports")
    route.side_effect = [
        samples.response(samples.sports(), used=42, remaining=458, last=0),
        httpx.Response(200, json=[], headers={"x-requests-remaining": "junk"}),
    ]
    assert plain.usage == Usage(None, None, None)

    plain.sports()
    assert plain.usage == Usage(remaining=458, used=42, last=0)

    plain.sports()
    assert plain.usage == Usage()


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("INVALID_KEY", 401),
        ("OUT_OF_USAGE_CREDITS", 401),
        ("UNKNOWN_SPORT", 404),
        ("INVALID_MARKET", 422),
        ("EXCEEDED_FREQ_LIMIT", 429),
    ],
)
def test_documented_errors(plain: OddsApi, router: respx.Router, code: str, status: int) -> None:
    """The error JSON becomes OddsApiError(code, message, status) with its details_url."""
    router.get(host=HOST, path=ODDS).mock(return_value=samples.error(status, code, "Nope."))

    with pytest.raises(OddsApiError) as raised:
        plain.odds(SPORT)

    assert raised.value.code == code
    assert raised.value.message == "Nope."
    assert raised.value.status == status
    assert raised.value.details_url is not None
    assert code in str(raised.value)


@pytest.mark.parametrize(
    ("response", "status"),
    [
        (httpx.Response(502, text="<html>Bad gateway</html>"), 502),
        (httpx.Response(500, content=b""), 500),
        (httpx.Response(200, json={"unexpected": True}), 200),
        (httpx.Response(200, content=b"not json"), 200),
        (httpx.Response(200, json=[{"id": "x", "commence_time": "2025-09-04T18:00:00Z"}]), 200),
        (httpx.Response(200, json=[{"id": "x", "sport_key": "s", "commence_time": "soon"}]), 200),
    ],
)
def test_undocumented_failures(
    plain: OddsApi, router: respx.Router, response: httpx.Response, status: int
) -> None:
    """Other failures and bodies of the wrong shape are OddsApiError with code None."""
    router.get(host=HOST, path=ODDS).mock(return_value=response)

    with pytest.raises(OddsApiError) as raised:
        plain.odds(SPORT)

    assert raised.value.code is None
    assert raised.value.status == status


def test_without_api_key_the_client_params_are_used(router: respx.Router) -> None:
    """With no api_key the client's own params carry the key; base_url is honoured."""
    route = router.get(host="ipv6-api.the-odds-api.com", path="/v4/sports").mock(
        return_value=httpx.Response(200, json=[])
    )
    transport = httpx.MockTransport(router.handler)
    with httpx.Client(transport=transport, params={"apiKey": KEY}) as client:
        api = OddsApi(client, base_url="https://ipv6-api.the-odds-api.com/")
        assert api.sports() == []
    assert _params(route) == {"apiKey": KEY}


# -- through quotaflow --


def _quotaflow(tmp_path: Path, router: respx.Router) -> httpx.Client:
    return quotaflow.make_client(
        profiles=[PROFILE],
        plugins=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
    )


def test_through_quotaflow_second_call_is_a_hit(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """The same odds twice: one upstream call, equal objects, and the key never on disk."""
    event = samples.event(SPORT, "A", "B", start + 2 * HOUR)
    route = router.get(host=HOST, path=ODDS).mock(
        return_value=samples.response(samples.odds([event]), used=42, remaining=458, last=1)
    )
    with _quotaflow(tmp_path, router) as client:
        api = OddsApi(client, api_key=KEY)
        first = api.odds(SPORT)
        traveller.shift(60)
        second = api.odds(SPORT)

        assert route.call_count == 1
        assert route.calls.last.request.url.params["apiKey"] == KEY
        assert first == second
        # From the cache: it cost nothing, and the ledger's remaining is this key's.
        assert api.usage == Usage(remaining=458, used=None, last=0)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_through_quotaflow_errors_still_raise(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller
) -> None:
    """API errors pass through the stack as OddsApiError; quota exhaustion as QuotaExhausted."""
    router.get(host=HOST, path=f"/v4/sports/{SPORT}/scores").mock(
        return_value=samples.error(404, "UNKNOWN_SPORT", "Unknown sport.")
    )
    router.get(host=HOST, path=ODDS).mock(
        return_value=samples.error(401, "OUT_OF_USAGE_CREDITS", "Usage quota has been reached.")
    )
    with _quotaflow(tmp_path, router) as client:
        api = OddsApi(client, api_key=KEY)
        with pytest.raises(OddsApiError) as raised:
            api.scores(SPORT)
        assert raised.value.code == "UNKNOWN_SPORT"
        # quotaflow reads OUT_OF_USAGE_CREDITS first and raises its own typed error.
        with pytest.raises(quotaflow.QuotaExhausted):
            api.odds(SPORT)
