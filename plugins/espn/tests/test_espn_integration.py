"""The ESPN plugin: its entry point, and through quotaflow's whole stack against a respx mock."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import attrs
import httpx
import pytest
import respx
import time_machine

import quotaflow
from quotaflow_espn import PROFILE, EspnFreshness
from quotaflow_espn import samples as espn

HOST = "site.api.espn.com"
BOARD = "/apis/site/v2/sports/football/nfl/scoreboard"
URL = f"https://{HOST}{BOARD}"
HOUR = 3600


def _client(
    tmp_path: Path,
    router: respx.Router,
    traveller: time_machine.Traveller,
    profile: quotaflow.ApiProfile = PROFILE,
) -> httpx.Client:
    # Time stands still: the limiter's and the retries' sleeps move it on instead.
    return quotaflow.make_client(
        profiles=[profile],
        plugins=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
        clock=quotaflow.Clock(sleep=traveller.shift),
    )


def _info(response: httpx.Response) -> quotaflow.ResponseInfo:
    info = response.extensions["quotaflow"]
    assert isinstance(info, quotaflow.ResponseInfo)
    return info


def test_published_under_the_entry_point() -> None:
    """The installed distribution publishes PROFILE as the espn plugin."""
    [found] = [ep for ep in entry_points(group="quotaflow.plugins") if ep.name == "espn"]
    assert found.value == "quotaflow_espn:PROFILE"
    assert found.load() is PROFILE


def test_profile_settings() -> None:
    """No key, no quota, two requests a second, six hours of stale fallback."""
    assert PROFILE.name == "espn"
    assert PROFILE.hosts == ("site.api.espn.com",)
    assert PROFILE.quota is None
    assert [(rate.limit, rate.per) for rate in PROFILE.rates] == [(2, 1.0)]
    assert PROFILE.max_stale == 6 * HOUR
    assert PROFILE.default_ttl == 60
    assert isinstance(PROFILE.freshness, EspnFreshness)
    assert PROFILE.matches(httpx.URL(URL))
    assert not PROFILE.matches(httpx.URL("https://www.espn.com/nfl/scoreboard"))


def test_live_scoreboard_is_fresh_for_30_seconds(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """A game in play: hits for 30 s, then a new upstream call."""
    route = router.get(host=HOST, path=BOARD).mock(
        return_value=espn.response(espn.scoreboard([espn.event("1", start - HOUR, "in")]))
    )
    with _client(tmp_path, router, traveller) as client:
        first = client.get(URL)
        assert _info(first).profile == "espn"
        assert _info(first).cache == "miss"
        assert _info(first).ttl == 30
        assert _info(first).remaining is None

        traveller.shift(29)
        assert _info(client.get(URL)).cache == "hit"
        assert route.call_count == 1

        traveller.shift(2)
        assert _info(client.get(URL)).cache == "miss"
        assert route.call_count == 2


def test_past_date_is_kept_a_day(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """Yesterday's finished games are stored for a day."""
    route = router.get(host=HOST, path=BOARD).mock(
        return_value=espn.response(espn.scoreboard([espn.event("1", start - 20 * HOUR, "post")]))
    )
    with _client(tmp_path, router, traveller) as client:
        assert _info(client.get(URL, params={"dates": "20250903"})).ttl == 86400
        traveller.shift(23 * HOUR)
        assert _info(client.get(URL, params={"dates": "20250903"})).cache == "hit"
        assert route.call_count == 1


def test_unreadable_scoreboard_gets_default_ttl(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller
) -> None:
    """A body the rule cannot read is stored with default_ttl (60 s)."""
    router.get(host=HOST, path=BOARD).mock(return_value=espn.response(b'{"sports": []}'))
    with _client(tmp_path, router, traveller) as client:
        response = client.get(URL)
    assert response.status_code == 200
    assert _info(response).ttl == 60


def test_failure_is_answered_stale_within_six_hours(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """Upstream down: the stored scoreboard within max_stale, then the failure itself."""
    body = espn.scoreboard([espn.event("1", start + 2 * HOUR, "pre")])
    answers = iter([espn.response(body)])
    route = router.get(host=HOST, path=BOARD)
    route.side_effect = lambda request: next(answers, httpx.Response(503))
    # Without quotaflow's own retries, one call is one upstream attempt.
    once = attrs.evolve(PROFILE, retries=0)
    with _client(tmp_path, router, traveller, once) as client:
        client.get(URL)
        traveller.shift(5 * HOUR)
        stale = client.get(URL)
        assert stale.status_code == 200
        assert stale.content == body
        assert _info(stale).cache == "stale"
        assert _info(stale).stale_reason == "status_503"

        traveller.shift(2 * HOUR)  # 7 h on: past ttl + max_stale
        failed = client.get(URL)
        assert failed.status_code == 503
        assert route.call_count == 3


def test_polite_rate_refuses_a_low_priority_third_call(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """Two calls a second: a third in the same second may not wait at low priority."""
    router.get(host=HOST).mock(
        return_value=espn.response(espn.scoreboard([espn.event("1", start - HOUR, "in")]))
    )
    with _client(tmp_path, router, traveller) as client:
        client.get(URL, params={"dates": "20250901"})
        client.get(URL, params={"dates": "20250902"})
        with pytest.raises(quotaflow.RateLimited):
            client.get(URL, params={"dates": "20250903"}, extensions={"priority": "low"})


def test_settings_through_evolve(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """attrs.evolve gives a profile with other thresholds."""
    router.get(host=HOST, path=BOARD).mock(
        return_value=espn.response(espn.scoreboard([espn.event("1", start - HOUR, "in")]))
    )
    faster = attrs.evolve(PROFILE, freshness=EspnFreshness(live=10))
    with _client(tmp_path, router, traveller, faster) as client:
        assert _info(client.get(URL)).ttl == 10


@pytest.mark.parametrize(
    "error",
    [
        b'{"code": 404, "message": "Failed to get league"}',
        b'{"error": {"code": 500, "message": "Internal"}}',
        b'  {"errors": [{"message": "bad request"}]}',
    ],
)
def test_error_in_a_200_never_replaces_the_good_answer(
    tmp_path: Path,
    router: respx.Router,
    traveller: time_machine.Traveller,
    start: float,
    error: bytes,
) -> None:
    """Past its ttl, a 200 whose body is an error object is not stored: the scoreboard
    stands in for it, and is still there for the next request."""
    body = espn.scoreboard([espn.event("1", start + 2 * HOUR, "pre")])
    route = router.get(host=HOST, path=BOARD)
    route.side_effect = [espn.response(body), espn.response(error), espn.response(error)]
    with _client(tmp_path, router, traveller) as client:
        client.get(URL)
        traveller.shift(10 * 60)  # past the 5 minutes of today's scoreboard

        during = client.get(URL)
        traveller.shift(10)
        after = client.get(URL)

    assert route.call_count == 3
    assert during.content == after.content == body
    assert _info(during).cache == _info(after).cache == "stale"
    assert _info(during).stale_reason == "error_body"
    stored = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert error.strip() not in stored


@pytest.mark.parametrize(
    "body",
    [
        espn.scoreboard([]),
        b'{"sports": [{"leagues": []}], "code": 500}',  # data, whatever else it carries
        b'{"code": 200, "message": "fine"}',
        b'{"error": null}',
        b'{"errors": [',
        b"[]",
    ],
)
def test_answers_that_are_not_error_objects_are_ok(body: bytes) -> None:
    """Data, success codes, empty error fields and bodies that don't parse stay ok."""
    from quotaflow_espn._profile import classify

    assert classify(espn.response(body)) == "ok"
