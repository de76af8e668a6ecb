"""cost(): the quota units The Odds API charges, estimated from the request alone."""

from __future__ import annotations

import httpx
import pytest

from quotaflow_theoddsapi import cost

BASE = "https://api.the-odds-api.com"
NFL = "/v4/sports/americanfootball_nfl"
EVENT = NFL + "/events/e912304de2b2ce35b473ce2ecd3d1502"
HISTORICAL = "/v4/historical/sports/americanfootball_nfl"
DATE = "2023-11-29T22:42:00Z"


def _books(count: int) -> str:
    return ",".join(f"book{n}" for n in range(count))


def _request(path: str, params: dict[str, str]) -> httpx.Request:
    return httpx.Request("GET", BASE + path, params={"apiKey": "SECRET", **params})


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        # /v4/sports is free, with or without out-of-season sports.
        ("/v4/sports", {}, 0),
        ("/v4/sports/", {}, 0),
        ("/v4/sports", {"all": "true"}, 0),
        # /odds: markets x regions, markets defaulting to h2h.
        (NFL + "/odds", {"regions": "us"}, 1),
        (NFL + "/odds", {}, 1),
        (NFL + "/odds", {"regions": "us", "markets": "h2h"}, 1),
        (NFL + "/odds", {"regions": "us", "markets": "h2h,spreads,totals"}, 3),
        (NFL + "/odds", {"regions": "us,uk,eu"}, 3),
        (NFL + "/odds", {"regions": "us,us2,uk,au,eu", "markets": "h2h,spreads"}, 10),
        (NFL + "/odds", {"regions": "us,uk", "markets": "h2h,totals", "oddsFormat": "american"}, 4),
        # Duplicates and blanks count once.
        (NFL + "/odds", {"regions": "us,us", "markets": "h2h,h2h,spreads"}, 2),
        (NFL + "/odds", {"regions": "us, uk", "markets": "h2h, spreads,"}, 4),
        # bookmakers win over regions; every 10 bookmakers count as one region.
        (NFL + "/odds", {"regions": "us,uk,eu", "bookmakers": "draftkings"}, 1),
        (NFL + "/odds", {"bookmakers": _books(10)}, 1),
        (NFL + "/odds", {"bookmakers": _books(11)}, 2),
        (NFL + "/odds", {"bookmakers": _books(20)}, 2),
        (NFL + "/odds", {"bookmakers": _books(21)}, 3),
        (NFL + "/odds", {"bookmakers": _books(11), "markets": "h2h,spreads"}, 4),
        (NFL + "/odds", {"bookmakers": _books(10) + ",book0", "regions": "us"}, 1),
        (NFL + "/odds/", {"regions": "us,uk", "markets": "h2h,spreads"}, 4),
        # /scores: 1, or 2 with daysFrom.
        (NFL + "/scores", {}, 1),
        (NFL + "/scores", {"daysFrom": "1"}, 2),
        (NFL + "/scores", {"daysFrom": "3"}, 2),
        (NFL + "/scores", {"daysFrom": "3", "dateFormat": "unix"}, 2),
        # /events is free.
        (NFL + "/events", {}, 0),
        (NFL + "/events", {"commenceTimeFrom": DATE}, 0),
        # Event odds: markets x regions.
        (EVENT + "/odds", {"regions": "us"}, 1),
        (EVENT + "/odds", {"regions": "us,uk", "markets": "h2h,totals,player_pass_tds"}, 6),
        (EVENT + "/odds", {"bookmakers": _books(11), "markets": "h2h,spreads"}, 4),
        # /markets and /participants cost 1.
        (EVENT + "/markets", {"regions": "us"}, 1),
        (EVENT + "/markets", {"regions": "us,uk,eu"}, 1),
        (NFL + "/participants", {}, 1),
        # Historical odds: 10 x markets x regions.
        (HISTORICAL + "/odds", {"date": DATE, "regions": "us"}, 10),
        (HISTORICAL + "/odds", {"date": DATE, "regions": "us,uk", "markets": "h2h,spreads"}, 40),
        (
            HISTORICAL + "/odds",
            {"date": DATE, "regions": "us", "markets": "h2h,spreads,totals"},
            30,
        ),
        (HISTORICAL + "/odds", {"date": DATE, "bookmakers": _books(11)}, 20),
        # Historical events: 1 (an empty answer costs 0, which only the answer tells).
        (HISTORICAL + "/events", {"date": DATE}, 1),
        # Historical event odds: 10 x markets x regions.
        (
            "/v4/historical/sports/americanfootball_nfl/events/e912304de2b2ce35b473ce2ecd3d1502/odds",
            {"date": DATE, "regions": "us"},
            10,
        ),
        (
            "/v4/historical/sports/americanfootball_nfl/events/e912304de2b2ce35b473ce2ecd3d1502/odds",
            {"date": DATE, "regions": "us,uk,au", "markets": "h2h,totals"},
            60,
        ),
        # Unknown paths cost 1.
        ("/v4/unknown", {}, 1),
        ("/v3/sports", {}, 1),
        (NFL + "/standings", {"regions": "us,uk"}, 1),
        (EVENT, {"regions": "us,uk", "markets": "h2h,spreads"}, 1),
    ],
)
def test_cost(path: str, params: dict[str, str], expected: int) -> None:
    """Each endpoint of The Odds API costs what its documentation says."""
    assert cost(_request(path, params)) == expected


def test_scores_days_from_with_trailing_slash() -> None:
    """daysFrom doubles the scores cost even when the path ends with a slash."""
    assert cost(_request(NFL + "/scores/", {"daysFrom": "2"})) == 2


def test_cost_is_the_same_on_both_hosts() -> None:
    """The estimate depends on path and query only, so both API hosts agree."""
    params = {"regions": "us,uk", "markets": "h2h,spreads"}
    first = httpx.Request("GET", BASE + NFL + "/odds", params=params)
    second = httpx.Request(
        "GET", "https://ipv6-api.the-odds-api.com" + NFL + "/odds", params=params
    )
    assert cost(first) == cost(second) == 4
