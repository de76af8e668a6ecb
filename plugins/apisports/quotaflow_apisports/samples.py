"""Answers shaped like API-Football v3's, for offline tests and demos.

Every answer is an envelope ``{"get", "parameters", "errors", "results", "paging",
"response"}``; errors come as HTTP 200 with a non-empty ``errors`` and an empty
``response``. Builders are deterministic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

__all__ = [
    "DAILY_LIMIT_MESSAGE",
    "envelope",
    "error_response",
    "fixture",
    "quota_headers",
    "response",
]

#: What the API says once the day's requests are spent.
DAILY_LIMIT_MESSAGE = (
    "You have reached the request limit for the day, Go to "
    "https://dashboard.api-football.com to upgrade your plan."
)

_LONG = {
    "TBD": "Time To Be Defined",
    "NS": "Not Started",
    "1H": "First Half, Kick Off",
    "HT": "Halftime",
    "2H": "Second Half, 2nd Half Started",
    "FT": "Match Finished",
    "PST": "Match Postponed",
}


def fixture(
    fixture_id: int,
    kick_off: float,
    status: str = "NS",
    *,
    home: str = "Arsenal",
    away: str = "Chelsea",
    goals: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """One item of ``/fixtures``' ``response``."""
    started = status not in ("NS", "TBD", "PST", "CANC")
    home_goals, away_goals = goals if goals is not None else ((0, 0) if started else (None, None))
    return {
        "fixture": {
            "id": fixture_id,
            "referee": None,
            "timezone": "UTC",
            "date": datetime.fromtimestamp(kick_off, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            "timestamp": int(kick_off),
            "venue": {"id": 494, "name": "Emirates Stadium", "city": "London"},
            "status": {
                "long": _LONG.get(status, status),
                "short": status,
                "elapsed": 45 if status in ("1H", "HT") else 90 if status == "FT" else None,
            },
        },
        "league": {"id": 39, "name": "Premier League", "country": "England", "season": 2025},
        "teams": {
            "home": {"id": 42, "name": home, "winner": None},
            "away": {"id": 49, "name": away, "winner": None},
        },
        "goals": {"home": home_goals, "away": away_goals},
    }


def envelope(
    endpoint: str,
    items: Sequence[Any],
    *,
    parameters: Mapping[str, str] | None = None,
    errors: Any = (),
) -> bytes:
    """An answer's body; ``errors`` an object or a list (empty by default)."""
    return json.dumps(
        {
            "get": endpoint,
            "parameters": dict(parameters or {}),
            "errors": list(errors) if isinstance(errors, tuple) else errors,
            "results": len(items),
            "paging": {"current": 1, "total": 1},
            "response": list(items),
        }
    ).encode()


def quota_headers(*, remaining: int, limit: int = 100, minute_remaining: int = 9) -> dict[str, str]:
    """The daily quota headers and the per-minute ones (10 a minute, the free plan)."""
    return {
        "x-ratelimit-requests-limit": str(limit),
        "x-ratelimit-requests-remaining": str(remaining),
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": str(minute_remaining),
    }


def response(
    body: bytes, *, remaining: int | None = None, limit: int = 100, minute_remaining: int = 9
) -> httpx.Response:
    """A 200 answer, with the quota headers (both windows) when ``remaining`` is given."""
    headers = {"content-type": "application/json"}
    if remaining is not None:
        headers.update(
            quota_headers(remaining=remaining, limit=limit, minute_remaining=minute_remaining)
        )
    return httpx.Response(200, content=body, headers=headers)


def error_response(
    endpoint: str, errors: Any, *, remaining: int | None = None, limit: int = 100
) -> httpx.Response:
    """An error dressed as a 200: ``errors`` set, ``response`` empty."""
    return response(envelope(endpoint, [], errors=errors), remaining=remaining, limit=limit)
