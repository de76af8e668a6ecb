"""EspnFreshness: how long each answer of ESPN's site API stays fresh."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from quotaflow_espn import EspnFreshness
from quotaflow_espn import samples as espn

#: 2025-09-04T15:33:20Z
NOW = 1_757_000_000.0
TODAY = "20250904"
NFL = "https://site.api.espn.com/apis/site/v2/sports/football/nfl"
MINUTE = 60
HOUR = 3600
DAY = 86400
RULE = EspnFreshness()


def _ttl(
    url: str, body: bytes, *, dates: str | None = None, now: float = NOW, rule: EspnFreshness = RULE
) -> float | None:
    params = {"dates": dates} if dates is not None else {}
    request = httpx.Request("GET", url, params=params)
    return rule(request, httpx.Response(200, content=body, request=request), now)


def _board(*games: tuple[float, espn.State]) -> bytes:
    """A scoreboard of games (kick-off offset from NOW, state)."""
    return espn.scoreboard(
        [
            espn.event(f"40167{n:04d}", NOW + offset, state)
            for n, (offset, state) in enumerate(games)
        ]
    )


@pytest.mark.parametrize("dates", [None, TODAY, "20250901", "20250910", "20250101-20250110"])
def test_any_game_in_play_is_live(dates: str | None) -> None:
    """A game in play makes a scoreboard fresh for 30 s, whatever its date."""
    body = _board((-2 * DAY, "post"), (-HOUR, "in"), (DAY, "pre"))
    assert _ttl(NFL + "/scoreboard", body, dates=dates) == 30


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        (None, 5 * MINUTE),  # ESPN's current day
        (TODAY, 5 * MINUTE),
        ("20250903", DAY),
        ("20240904", DAY),
        ("20250905", 5 * MINUTE),
        ("20250828-20250903", DAY),
        ("20250901-20250904", 5 * MINUTE),
        ("20250904-20250910", 5 * MINUTE),
        ("20250905-20250910", 5 * MINUTE),
        ("20250903-20250828", DAY),  # a reversed range reads in order
    ],
)
def test_by_date_without_live_games(dates: str | None, expected: float) -> None:
    """No game in play: past dates 1 day, today and future dates 5 min."""
    body = _board((-DAY, "post"))
    assert _ttl(NFL + "/scoreboard", body, dates=dates) == expected


@pytest.mark.parametrize("dates", ["2025", "202509", "2025-09-04", "20251340", "junk", ""])
def test_dates_in_another_form_count_as_today(dates: str) -> None:
    """A dates value that is not YYYYMMDD (or a range of them) gets today's 5 min."""
    assert _ttl(NFL + "/scoreboard", _board((-DAY, "post")), dates=dates) == 5 * MINUTE


def test_today_is_the_utc_date_of_now() -> None:
    """The date compared is now's in UTC: at 23:59:59Z tomorrow is still future."""
    late = datetime(2025, 9, 4, 23, 59, 59, tzinfo=UTC).timestamp()
    body = espn.scoreboard([espn.event("1", late - DAY, "post")])
    assert _ttl(NFL + "/scoreboard", body, dates="20250904", now=late) == 5 * MINUTE
    assert _ttl(NFL + "/scoreboard", body, dates="20250903", now=late) == DAY
    assert _ttl(NFL + "/scoreboard", body, dates="20250905", now=late) == 5 * MINUTE
    assert _ttl(NFL + "/scoreboard", body, dates="20250904", now=late + 1) == DAY


@pytest.mark.parametrize(
    ("kick_off", "expected"),
    [
        (100, 100),  # 15:35:00, ESPN writes whole minutes
        (280, 280),
        (400, 5 * MINUTE),
        (DAY, 5 * MINUTE),
        (40, 40),  # 15:34:00
        (30, 30),  # under the live ttl: never less than it
    ],
)
def test_ttl_never_runs_past_the_next_kick_off(kick_off: float, expected: float) -> None:
    """A game still to start shortens the ttl to its kick-off (at least the live ttl)."""
    body = espn.scoreboard(
        [espn.event("1", NOW + kick_off, "pre"), espn.event("2", NOW + 2 * DAY, "pre")]
    )
    assert _ttl(NFL + "/scoreboard", body, dates=TODAY) == expected


@pytest.mark.parametrize("late", [0, MINUTE, 2 * HOUR, 6 * HOUR - MINUTE])
def test_pre_game_past_its_kick_off_is_live(late: float) -> None:
    """A game past its kick-off but not started yet may start any moment: 30 s."""
    body = _board((-late, "pre"), (-DAY, "post"))
    assert _ttl(NFL + "/scoreboard", body, dates="20250903") == 30


def test_pre_game_long_past_its_kick_off_no_longer_counts() -> None:
    """Six hours past kick-off a "pre" game is taken as not coming: the date decides."""
    body = _board((-7 * HOUR, "pre"))
    assert _ttl(NFL + "/scoreboard", body, dates="20250903") == DAY


def test_empty_scoreboard() -> None:
    """No events (an off day) follows the date rule."""
    body = espn.scoreboard([])
    assert _ttl(NFL + "/scoreboard", body, dates=TODAY) == 5 * MINUTE
    assert _ttl(NFL + "/scoreboard", body, dates="20250101") == DAY


@pytest.mark.parametrize(
    "body",
    [
        b"<html>oops</html>",
        b"[]",
        b'{"leagues": []}',
        b'{"events": {}}',
        b'{"events": [1]}',
        b'{"events": [{"id": "1", "date": "2025-09-04T18:00Z"}]}',
        b'{"events": [{"id": "1", "status": {"type": {"state": 3}}}]}',
        b'{"events": [{"id": "1", "date": "soon", "status": {"type": {"state": "pre"}}}]}',
        b'{"events": [{"id": "1", "status": {"type": {"state": "pre"}}}]}',
    ],
)
def test_unreadable_scoreboard_raises_value_error(body: bytes) -> None:
    """A body of another shape raises ValueError (quotaflow then uses default_ttl)."""
    with pytest.raises(ValueError):  # noqa: PT011 - the core catches any ValueError
        _ttl(NFL + "/scoreboard", body)


def test_unknown_fields_are_ignored() -> None:
    """Fields the rule does not read change nothing."""
    event = espn.event("1", NOW - HOUR, "in")
    event["competitions"] = [{"odds": [{"details": "KC -3.5"}]}]
    body = json.dumps({"events": [event], "season": {"year": 2025}, "day": {}}).encode()
    assert _ttl(NFL + "/scoreboard", body) == 30


def test_summary_and_teams() -> None:
    """Summaries and teams: 1 h; a summary of a game in play: 30 s."""
    assert _ttl(NFL + "/summary?event=401671789", espn.summary("401671789", "post")) == HOUR
    assert _ttl(NFL + "/summary?event=401671789", espn.summary("401671789", "in")) == 30
    assert _ttl(NFL + "/summary?event=401671789", b"not json") == HOUR
    assert _ttl(NFL + "/summary?event=401671789", b'{"header": {"competitions": [7]}}') == HOUR
    assert _ttl(NFL + "/teams", b"{}") == HOUR
    assert _ttl(NFL + "/teams/12", b"{}") == HOUR
    assert _ttl(NFL + "/teams/12/schedule", b"{}") == HOUR


@pytest.mark.parametrize(
    "url",
    [
        NFL + "/news",
        NFL + "/scoreboard/extra",
        "https://site.api.espn.com/apis/v2/sports/football/nfl/standings",
        "https://site.api.espn.com/",
        "https://site.api.espn.com/apis/site/v2/sports/football",
    ],
)
def test_other_paths_defer_to_http_headers(url: str) -> None:
    """Paths the rule does not know return None: ESPN's own caching headers decide."""
    assert _ttl(url, b"{}") is None


def test_every_value_is_a_setting() -> None:
    """The thresholds are attrs fields."""
    rule = EspnFreshness(live=10, today=60, past=3600, future=120, summary=600, teams=7200)
    assert _ttl(NFL + "/scoreboard", _board((-HOUR, "in")), rule=rule) == 10
    assert _ttl(NFL + "/scoreboard", _board((DAY, "pre")), rule=rule) == 60
    assert _ttl(NFL + "/scoreboard", _board((DAY, "pre")), dates="20991231", rule=rule) == 120
    assert _ttl(NFL + "/scoreboard", _board((-DAY, "post")), dates="20000101", rule=rule) == 3600
    assert _ttl(NFL + "/summary", espn.summary("1", "pre"), rule=rule) == 600
    assert _ttl(NFL + "/teams", b"{}", rule=rule) == 7200
