"""Finished days and games go to quotaflow's cold store (``EspnImmutable``)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import respx
import time_machine

import quotaflow
from quotaflow_espn import PROFILE, EspnImmutable
from quotaflow_espn import samples as espn

HOST = "site.api.espn.com"
BOARD = "/apis/site/v2/sports/football/nfl/scoreboard"
SUMMARY = "/apis/site/v2/sports/football/nfl/summary"
DAY = 86400


def _request(path: str, **params: str) -> httpx.Request:
    return httpx.Request("GET", f"https://{HOST}{path}", params=params)


@pytest.mark.parametrize(
    ("path", "params", "body", "expected"),
    [
        (BOARD, {"dates": "20250903"}, espn.scoreboard([espn.event("1", 0, "post")]), 30 * DAY),
        (BOARD, {}, espn.scoreboard([espn.event("1", 0, "post")]), None),  # ESPN's today
        (BOARD, {"dates": "20250903"}, espn.scoreboard([]), None),
        (
            BOARD,
            {"dates": "20250903"},
            espn.scoreboard([espn.event("1", 0, "post"), espn.event("2", 0, "in")]),
            None,
        ),
        (BOARD, {"dates": "20250903"}, b"not json", None),
        (SUMMARY, {"event": "1"}, espn.summary("1", "post"), 30 * DAY),
        (SUMMARY, {"event": "1"}, espn.summary("1", "in"), None),
        ("/apis/site/v2/sports/football/nfl/teams", {}, b"{}", None),
    ],
)
def test_immutable_rule(path: str, params: dict[str, str], body: bytes, expected: object) -> None:
    assert EspnImmutable()(_request(path, **params), espn.response(body)) == expected


def test_finished_day_is_answered_cold_after_a_restart(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """A past day whose games are all over: served from the cold store a week on."""
    route = router.get(host=HOST, path=BOARD).mock(
        return_value=espn.response(espn.scoreboard([espn.event("1", start - 20 * 3600, "post")]))
    )

    def client() -> httpx.Client:
        return quotaflow.make_client(
            profiles=[PROFILE],
            plugins=False,
            state_dir=tmp_path,
            transport=httpx.MockTransport(router.handler),
            clock=quotaflow.Clock(sleep=traveller.shift),
        )

    url = f"https://{HOST}{BOARD}?dates=20250903"
    with client() as first:
        first.get(url)
    traveller.shift(7 * DAY)
    with client() as later:
        again = later.get(url)
    info = again.extensions["quotaflow"]
    assert (info.cache, info.tier) == ("hit", "cold")
    assert route.call_count == 1
