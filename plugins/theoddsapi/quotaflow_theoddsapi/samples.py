"""Answers shaped like The Odds API v4's, field for field, for offline tests and demos.

Every builder is deterministic: the same arguments give the same bytes. Shapes and
headers follow the provider's documentation (see the plugin's README.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

__all__ = [
    "BOOKMAKERS",
    "error",
    "event",
    "events",
    "historical",
    "iso",
    "odds",
    "quota_headers",
    "response",
    "score",
    "scores",
    "sports",
]

#: (key, title) of bookmakers in the ``us`` region.
BOOKMAKERS: Sequence[tuple[str, str]] = (
    ("draftkings", "DraftKings"),
    ("fanduel", "FanDuel"),
    ("betmgm", "BetMGM"),
    ("caesars", "Caesars"),
    ("pointsbetus", "PointsBet (US)"),
    ("betrivers", "BetRivers"),
    ("bovada", "Bovada"),
    ("mybookieag", "MyBookie.ag"),
)

_TITLES = {
    "americanfootball_nfl": ("American Football", "NFL", "US Football"),
    "basketball_nba": ("Basketball", "NBA", "US Basketball"),
    "baseball_mlb": ("Baseball", "MLB", "Major League Baseball"),
    "icehockey_nhl": ("Ice Hockey", "NHL", "US Ice Hockey"),
}


def iso(moment: float) -> str:
    """ISO 8601 UTC with ``Z``, as the API writes times."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event_id(*parts: object) -> str:
    return hashlib.md5("|".join(map(str, parts)).encode()).hexdigest()  # 32 hex characters


def _price(seed: str, low: float, high: float) -> float:
    fraction = int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return round(low + (high - low) * fraction, 2)


def _markets(
    event_id: str, bookmaker: str, home: str, away: str, keys: Sequence[str], at: str
) -> list[dict[str, Any]]:
    markets: list[dict[str, Any]] = []
    for key in keys:
        seed = f"{event_id}{bookmaker}{key}"
        if key == "h2h":
            outcomes = [
                {"name": home, "price": _price(seed + "h", 1.4, 2.9)},
                {"name": away, "price": _price(seed + "a", 1.4, 2.9)},
            ]
        elif key == "spreads":
            point = _price(seed, 1, 10) // 0.5 * 0.5
            outcomes = [
                {"name": home, "price": _price(seed + "h", 1.8, 2.0), "point": -point},
                {"name": away, "price": _price(seed + "a", 1.8, 2.0), "point": point},
            ]
        elif key == "totals":
            point = 38.5 + _price(seed, 0, 12) // 0.5 * 0.5
            outcomes = [
                {"name": "Over", "price": _price(seed + "o", 1.8, 2.0), "point": point},
                {"name": "Under", "price": _price(seed + "u", 1.8, 2.0), "point": point},
            ]
        else:
            outcomes = [{"name": home, "price": _price(seed, 2.0, 30.0)}]
        markets.append({"key": key, "last_update": at, "outcomes": outcomes})
    return markets


def event(
    sport_key: str,
    home_team: str,
    away_team: str,
    commence_time: float,
    *,
    markets: Sequence[str] = ("h2h",),
    bookmakers: int = 4,
    updated: float | None = None,
) -> dict[str, Any]:
    """One event of ``/v4/sports/{sport}/odds``."""
    event_id = _event_id(sport_key, home_team, away_team, commence_time)
    at = iso(updated if updated is not None else commence_time - 3600)
    return {
        "id": event_id,
        "sport_key": sport_key,
        "sport_title": _TITLES.get(sport_key, ("", sport_key.upper(), ""))[1],
        "commence_time": iso(commence_time),
        "home_team": home_team,
        "away_team": away_team,
        "bookmakers": [
            {
                "key": key,
                "title": title,
                "last_update": at,
                "markets": _markets(event_id, key, home_team, away_team, markets, at),
            }
            for key, title in BOOKMAKERS[:bookmakers]
        ],
    }


def odds(events: Sequence[dict[str, Any]]) -> bytes:
    """The body of ``/v4/sports/{sport}/odds``."""
    return json.dumps(list(events)).encode()


def historical(
    data: Any, timestamp: float, previous: float | None, following: float | None
) -> bytes:
    """A historical answer: ``data`` (an endpoint's usual shape) in the wrapper
    ``{"timestamp", "previous_timestamp", "next_timestamp", "data"}``."""
    return json.dumps(
        {
            "timestamp": iso(timestamp),
            "previous_timestamp": iso(previous) if previous is not None else None,
            "next_timestamp": iso(following) if following is not None else None,
            "data": data,
        }
    ).encode()


def events(items: Sequence[dict[str, Any]]) -> bytes:
    """The body of ``/v4/sports/{sport}/events``: events as :func:`event` builds them, no odds."""
    return json.dumps(
        [{key: value for key, value in item.items() if key != "bookmakers"} for item in items]
    ).encode()


def score(
    sport_key: str,
    home_team: str,
    away_team: str,
    commence_time: float,
    *,
    now: float,
    completed: bool = False,
    home_score: int = 0,
    away_score: int = 0,
) -> dict[str, Any]:
    """One event of ``/v4/sports/{sport}/scores``: not started games have ``scores: null``."""
    started = commence_time <= now
    return {
        "id": _event_id(sport_key, home_team, away_team, commence_time),
        "sport_key": sport_key,
        "sport_title": _TITLES.get(sport_key, ("", sport_key.upper(), ""))[1],
        "commence_time": iso(commence_time),
        "completed": completed,
        "home_team": home_team,
        "away_team": away_team,
        "scores": (
            [
                {"name": home_team, "score": str(home_score)},
                {"name": away_team, "score": str(away_score)},
            ]
            if started
            else None
        ),
        "last_update": iso(now) if started else None,
    }


def scores(items: Sequence[dict[str, Any]]) -> bytes:
    """The body of ``/v4/sports/{sport}/scores``: events as :func:`score` builds them."""
    return json.dumps(list(items)).encode()


def sports(keys: Sequence[str] = tuple(_TITLES)) -> bytes:
    """The body of ``/v4/sports``."""
    return json.dumps(
        [
            {
                "key": key,
                "group": _TITLES.get(key, ("Other", key, ""))[0],
                "title": _TITLES.get(key, ("", key.upper(), ""))[1],
                "description": _TITLES.get(key, ("", "", ""))[2],
                "active": True,
                "has_outrights": False,
            }
            for key in keys
        ]
    ).encode()


def quota_headers(*, used: int, remaining: int, last: int) -> dict[str, str]:
    """``x-requests-*`` headers: lower case, integers as strings."""
    return {
        "x-requests-remaining": str(remaining),
        "x-requests-used": str(used),
        "x-requests-last": str(last),
    }


_ERROR_DOCS = "https://the-odds-api.com/liveapi/guides/v4/api-error-codes.html#"


def error(status: int, error_code: str, message: str) -> httpx.Response:
    """An error answer: JSON ``{"message", "error_code", "details_url"}``."""
    body = {
        "message": message,
        "error_code": error_code,
        "details_url": _ERROR_DOCS + error_code.lower().replace("_", "-"),
    }
    return httpx.Response(status, json=body)


def response(body: bytes, *, used: int, remaining: int, last: int) -> httpx.Response:
    """A 200 answer with the quota headers the API sends (no caching headers)."""
    headers = {
        "content-type": "application/json",
        **quota_headers(used=used, remaining=remaining, last=last),
    }
    return httpx.Response(200, content=body, headers=headers)
