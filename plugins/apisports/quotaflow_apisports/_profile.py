"""API-Sports, API-Football v3 (``v3.football.api-sports.io``): see the
plugin's README.md and https://www.api-football.com/documentation-v3.

What the profile knows:

- the key travels in the ``x-apisports-key`` header (``x-rapidapi-key`` through
  RapidAPI): both are secret headers, never stored, keyed on or logged;
- a daily quota (free plan: 100 requests a day, reset at 00:00 UTC), synced from
  ``x-ratelimit-requests-limit`` (its size) and ``x-ratelimit-requests-remaining``;
- a per-minute rate (free plan: 10 a minute; paid plans allow more:
  ``make_profile(per_minute=300)``). Its ``X-RateLimit-Limit``/``-Remaining`` headers
  are read (:data:`read_window`): once the API says none is left this minute (other
  clients on the key spent it), the profile holds off for the minute (no header says
  when it resets) instead of collecting a 429;
- errors often come as HTTP 200 with a non-empty ``errors`` (an object or a list)
  and ``"response": []``: :func:`classify` calls such an answer an error (never
  stored, a stored answer may stand in for it), and quota exhaustion when the
  errors say the daily request limit is reached.

Freshness (:class:`ApiSportsFreshness`, every value a setting):

- ``/fixtures`` (and ``/fixtures/headtohead``): 15 s with a fixture in play, one
  past its kick-off but not started, or a ``live=`` query; 5 min when the next
  kick-off is within 24 h (and never past it); 1 h when it is further away; 1 day
  when every fixture is finished (or postponed, cancelled...), or for a past
  ``date=`` with no fixture;
- ``/fixtures/events``, ``/lineups``, ``/statistics``, ``/players``: 1 min;
- ``/odds/live``: 15 s;
- ``/leagues``, ``/teams``, ``/venues``, ``/countries`` and other reference data: 1 day;
- ``/status`` (the account): the HTTP headers decide;
- anything else (standings, predictions, odds...): 1 h.

A stored answer may stand in for a failed call for a day (``max_stale``), which
also covers the rest of the UTC day once the quota is spent.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import attrs
import httpx

from quotaflow.profiles import ApiProfile, Quota, QuotaHeaders, Rate, Verdict, WindowHeaders

__all__ = [
    "HOST",
    "PROFILE",
    "ApiSportsFreshness",
    "ApiSportsImmutable",
    "classify",
    "make_profile",
    "read_quota",
    "read_window",
    "readers",
]

HOST = "v3.football.api-sports.io"
MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0

# Fixture status codes, from API-Football's documentation of fixture.status.short.
IN_PLAY = frozenset({"1H", "HT", "2H", "ET", "BT", "P", "SUSP", "INT", "LIVE"})
SETTLED = frozenset({"FT", "AET", "PEN", "PST", "CANC", "ABD", "AWD", "WO"})
# Settled for good: played to the end, or awarded. (Postponed, cancelled and abandoned
# fixtures may yet be played.)
FINAL = frozenset({"FT", "AET", "PEN", "AWD", "WO"})

# A fixture still "not started" this long after its kick-off is taken as not coming.
_LATE_START = 6 * HOUR

_FIXTURE_DETAILS = frozenset(
    {"/fixtures/events", "/fixtures/lineups", "/fixtures/statistics", "/fixtures/players"}
)
_REFERENCE = frozenset(
    {
        "/leagues",
        "/leagues/seasons",
        "/teams",
        "/teams/seasons",
        "/teams/countries",
        "/venues",
        "/countries",
        "/timezone",
        "/coachs",
        "/players/squads",
        "/players/seasons",
        "/players/profiles",
        "/trophies",
        "/sidelined",
        "/transfers",
    }
)

read_quota = QuotaHeaders(
    limit="x-ratelimit-requests-limit", remaining="x-ratelimit-requests-remaining"
)
"""Reads the daily quota: its size and what is left (``X-RateLimit-*`` is per minute)."""

read_window = WindowHeaders(remaining="x-ratelimit-remaining", limit="x-ratelimit-limit")
"""Reads the per-minute window. No header says when it resets: at 0 left the profile
holds off for its per-minute rate's window, 60 s."""

# "You have reached the request limit for the day, Go to https://dashboard..."
_DAILY_LIMIT = re.compile(r"requests?\s+limit|limit\s+for\s+the\s+day|daily\s+limit", re.I)


def _messages(errors: Any) -> Iterator[tuple[str, str]]:
    """(key, text) of each error, whether ``errors`` is an object or a list."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            yield str(key), str(value)
    elif isinstance(errors, list):
        for item in errors:
            if isinstance(item, dict):
                yield from _messages(item)
            else:
                yield "", str(item)
    elif errors:
        yield "", str(errors)


def classify(response: httpx.Response) -> Verdict:
    """A non-empty ``errors`` is an error, whatever the status; the daily limit, exhaustion.

    ``{"errors": {"requests": "You have reached the request limit for the day..."}}``
    is ``"quota_exhausted"``; ``{"errors": {"token": "..."}}`` or a per-minute
    ``rateLimit`` error is ``"error"``. A body that is not JSON is left to its status.
    """
    content = response.content
    if b'"errors"' not in content:
        return "ok"
    try:
        body = json.loads(content)
    except ValueError:
        return "ok"
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors:
        return "ok"
    for key, text in _messages(errors):
        if key.lower() == "requests" or _DAILY_LIMIT.search(text):
            return "quota_exhausted"
    return "error"


def _fixtures(body: Any) -> list[tuple[str, float]]:
    """(status, kick-off) of each fixture of a ``/fixtures`` answer."""
    items = body.get("response") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ValueError("expected an object with a 'response' list")
    found = []
    for item in items:
        fixture = item.get("fixture") if isinstance(item, dict) else None
        status = fixture.get("status") if isinstance(fixture, dict) else None
        short = status.get("short") if isinstance(status, dict) else None
        if not isinstance(fixture, dict) or not isinstance(short, str):
            raise ValueError("a fixture has no fixture.status.short")
        found.append((short, _kick_off(fixture)))
    return found


def _kick_off(fixture: dict[str, Any]) -> float:
    stamp = fixture.get("timestamp")
    if isinstance(stamp, int | float) and not isinstance(stamp, bool) and math.isfinite(stamp):
        return float(stamp)
    text = fixture.get("date")
    if not isinstance(text, str):
        raise ValueError(f"fixture {fixture.get('id')!r} has no timestamp or date")
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@attrs.frozen
class ApiSportsFreshness:
    """How long an answer of API-Football v3 stays fresh, in seconds.

    Args:
        live: fixtures in play (or past kick-off, not started), ``live=`` queries,
            live odds.
        today: fixtures whose next kick-off is within 24 hours.
        upcoming: fixtures whose next kick-off is further away.
        finished: fixtures all finished (or postponed, cancelled...), a past date.
        details: a fixture's events, lineups, statistics and players.
        reference: leagues, teams, venues, countries and the like.
        other: every other endpoint but ``/status``.

    Raises:
        ValueError: (from a call) a ``/fixtures`` body it cannot read; quotaflow
            then uses the profile's ``default_ttl``.

    .. versionadded:: 0.1
    """

    live: float = 15.0
    today: float = 5 * MINUTE
    upcoming: float = HOUR
    finished: float = DAY
    details: float = MINUTE
    reference: float = DAY
    other: float = HOUR

    def __call__(
        self, request: httpx.Request, response: httpx.Response, now: float
    ) -> float | None:
        path = request.url.path.rstrip("/") or "/"
        if path in ("/fixtures", "/fixtures/headtohead"):
            return self._fixtures(request, json.loads(response.content), now)
        if path in _FIXTURE_DETAILS:
            return self.details
        if path.startswith("/odds/live"):
            return self.live
        if path in _REFERENCE:
            return self.reference
        if path == "/status":
            return None
        return self.other

    def _fixtures(self, request: httpx.Request, body: Any, now: float) -> float:
        fixtures = _fixtures(body)
        params = request.url.params
        if params.get("live") or any(short in IN_PLAY for short, _ in fixtures):
            return self.live
        pending = [kick_off for short, kick_off in fixtures if short not in SETTLED]
        if not fixtures:
            return self._by_date(params.get("date"), now)
        if not pending:
            return self.finished
        until = min(pending) - now
        if -_LATE_START < until <= 0:
            return self.live  # past kick-off: it may start any moment
        ttl = self.today if until < DAY else self.upcoming
        return min(ttl, max(self.live, math.ceil(until))) if until > 0 else ttl

    def _by_date(self, value: str | None, now: float) -> float:
        """No fixture: a past ``date=YYYY-MM-DD`` stays empty; others may fill up."""
        try:
            day = date.fromisoformat(value) if value else None
        except ValueError:
            day = None
        if day is not None and day < datetime.fromtimestamp(now, UTC).date():
            return self.finished
        return self.today


def _not_the_account(url: httpx.URL) -> bool:
    """Every answer is the same for every key but ``/status``, the key's account."""
    return url.path.rstrip("/") != "/status"


@attrs.frozen
class ApiSportsImmutable:
    """Which answers of API-Football v3 stay as they are: kept in quotaflow's cold store
    for ``final`` seconds (``ApiProfile.immutable``; 30 days).

    ``/fixtures`` asked for by ``id=`` (or ``ids=``) whose every fixture asked for came
    back with a final status (``FT``, ``AET``, ``PEN``, ``AWD``, ``WO``). A list by
    date, league or team is not: fixtures are added, moved and rescheduled.

    .. versionadded:: 0.3
    """

    final: float = 30 * DAY

    def __call__(self, request: httpx.Request, response: httpx.Response) -> float | None:
        if (request.url.path.rstrip("/") or "/") != "/fixtures":
            return None
        params = request.url.params
        asked = {part.strip() for part in (params.get("ids") or params.get("id") or "").split("-")}
        asked.discard("")
        if not asked or set(params) - {"id", "ids", "timezone"}:
            return None
        try:
            fixtures = _fixtures(json.loads(response.content))
        except ValueError:
            return None
        if len(fixtures) != len(asked) or not all(short in FINAL for short, _ in fixtures):
            return None
        return self.final


def make_profile(
    host: str = HOST,
    *,
    name: str = "apisports",
    daily: int = 100,
    per_minute: int = 10,
    freshness: ApiSportsFreshness | None = None,
    max_stale: float = DAY,
    immutable: ApiSportsImmutable | None = None,
) -> ApiProfile:
    """A profile for one API-Sports API: each API (football, basketball...) has its own quota.

    Args:
        host: the API's host, e.g. ``v1.basketball.api-sports.io``.
        name: the profile's name; give each API its own.
        daily: requests a day until the headers tell the plan's size (free plan: 100).
        per_minute: requests a minute (free plan: 10).
        freshness: the freshness rule (football's by default).
        max_stale: seconds past freshness a stored answer may stand in for a failed call.
        immutable: which answers go to the cold store (finished fixtures by id, by default).

    Raises:
        quotaflow.ConfigError: a value is invalid; the message names it.

    .. versionadded:: 0.1
    """
    return ApiProfile(
        name=name,
        hosts=(host,),
        rates=(Rate(per_minute, per=60.0),),
        quota=Quota(daily, period="day"),
        read_quota=read_quota,
        read_window=read_window,
        freshness=freshness if freshness is not None else ApiSportsFreshness(),
        default_ttl=MINUTE,
        max_stale=max_stale,
        secret_headers=("x-apisports-key", "x-rapidapi-key"),
        classify=classify,
        # Errors come as 200s with an `errors` object, and freshness reads the fixtures.
        reads_body=True,
        # Fixtures are the same for every key (each key is still its own daily quota);
        # /status is the account's own.
        shared_answers=_not_the_account,
        immutable=immutable if immutable is not None else ApiSportsImmutable(),
    )


PROFILE = make_profile()
"""The ``apisports`` plugin's profile: API-Football v3 on the free plan.

.. versionadded:: 0.1
"""


def readers(period: str = "day") -> dict[str, object]:
    """The ``apisports`` convention of ``quotaflow.toml``'s ``[apis.NAME]`` tables
    (``headers = "apisports"``), published under the ``quotaflow.headers`` entry-point
    group, for any API speaking API-Sports' dialect: the daily quota in
    ``x-ratelimit-requests-*``, the minute window in ``X-RateLimit-*``, and errors as 200s
    with a non-empty ``errors`` object (so the body is read).

    Raises:
        ValueError: ``period`` is not ``"day"``: API-Sports' quota is daily.

    .. versionadded:: 0.2
    """
    if period != "day":
        raise ValueError(f"API-Sports quotas are daily, not per {period}")
    return {
        "read_quota": read_quota,
        "read_window": read_window,
        "classify": classify,
        "reads_body": True,
    }
