"""ESPN's site API (``site.api.espn.com``), from what is known of it (see the
plugin's README.md).

ESPN publishes no limits, sends no rate-limit headers and takes no key, so the
profile is about politeness and freshness:

- rate: 2 requests a second (our choice; nothing published), no quota;
- ``/scoreboard``: 30 s while any game is in play; else by its ``dates=YYYYMMDD``
  (or ``YYYYMMDD-YYYYMMDD``) compared with today in UTC: today (or no ``dates``)
  5 min, future dates 5 min, past dates 1 day; and never past the next
  kick-off of a game still to start (a game whose kick-off has passed but which
  has not started yet counts as in play);
- ``/summary``: 1 h, or 30 s when its header says the game is in play;
- ``/teams``: 1 h; other paths defer to ESPN's own caching headers;
- a stored answer may stand in for a failed call for 6 hours;
- a 200 whose body is an error object (``{"code": 404, "message": ...}``,
  ``{"error": ...}``, ``{"errors": [...]}``) is an error: never stored over a good answer.

Every number is a setting: ``attrs.evolve(PROFILE, freshness=EspnFreshness(live=15))``.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from typing import Any

import attrs
import httpx

from quotaflow.profiles import ApiProfile, Rate, Verdict

__all__ = ["PROFILE", "EspnFreshness", "EspnImmutable"]

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0

# A game still "pre" this long after its kick-off is taken as not coming (postponed
# games usually turn "post", but not always at once): it no longer keeps answers short.
_LATE_START = 6 * HOUR


def _yyyymmdd(text: str) -> date:
    if len(text) != 8 or not text.isascii() or not text.isdigit():
        raise ValueError(f"not YYYYMMDD: {text!r}")
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


def _date_range(value: str | None) -> tuple[date, date] | None:
    """``dates=YYYYMMDD`` or ``YYYYMMDD-YYYYMMDD``; None when absent or in another form."""
    if value is None:
        return None
    first, _, last = value.strip().partition("-")
    try:
        start = _yyyymmdd(first)
        end = _yyyymmdd(last) if last else start
    except ValueError:
        return None
    return (start, end) if start <= end else (end, start)


def _time(value: Any) -> float:
    """ESPN writes ``2025-09-05T00:20Z`` (minutes, UTC)."""
    if not isinstance(value, str):
        raise ValueError(f"event date is not a string: {value!r}")
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _state(event: Any) -> str:
    if not isinstance(event, dict):
        raise ValueError("an event is not an object")
    status = event.get("status")
    kind = status.get("type") if isinstance(status, dict) else None
    state = kind.get("state") if isinstance(kind, dict) else None
    if not isinstance(state, str):
        raise ValueError(f"event {event.get('id')!r} has no status.type.state")
    return state


def _scoreboard_events(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise ValueError("expected a scoreboard: an object with an 'events' list")
    events: list[dict[str, Any]] = body["events"]
    return events


def _summary_live(body: Any) -> bool:
    """Whether a summary's ``header.competitions[].status.type.state`` says "in".

    The summary's shape is not documented: anything unexpected reads as not live.
    """
    header = body.get("header") if isinstance(body, dict) else None
    competitions = header.get("competitions") if isinstance(header, dict) else None
    if not isinstance(competitions, list):
        return False
    for competition in competitions:
        try:
            if _state(competition) == "in":
                return True
        except ValueError:
            continue
    return False


@attrs.frozen
class EspnFreshness:
    """How long an answer of ESPN's site API stays fresh, in seconds.

    Args:
        live: a scoreboard with a game in play (or past its kick-off, not yet started),
            and a summary of a game in play.
        today: a scoreboard of today (UTC), or without ``dates``.
        past: a scoreboard of a past date with no game in play.
        future: a scoreboard of a future date.
        summary: ``/summary`` of a game not in play.
        teams: ``/teams`` and everything below it.

    Raises:
        ValueError: (from a call) a scoreboard body it cannot read; quotaflow then
            uses the profile's ``default_ttl``.

    .. versionadded:: 0.1
    """

    live: float = 30.0
    today: float = 5 * MINUTE
    past: float = DAY
    future: float = 5 * MINUTE
    summary: float = HOUR
    teams: float = HOUR

    def __call__(
        self, request: httpx.Request, response: httpx.Response, now: float
    ) -> float | None:
        # /apis/site/v2/sports/{sport}/{league}/{endpoint}[/...]
        parts = request.url.path.rstrip("/").split("/")
        if parts[1:3] != ["apis", "site"] or len(parts) < 8:
            return None
        endpoint = parts[7]
        if endpoint == "scoreboard" and len(parts) == 8:
            return self._scoreboard(request, json.loads(response.content), now)
        if endpoint == "summary":
            try:
                body = json.loads(response.content)
            except ValueError:
                return self.summary
            return self.live if _summary_live(body) else self.summary
        if endpoint == "teams":
            return self.teams
        return None

    def _scoreboard(self, request: httpx.Request, body: Any, now: float) -> float:
        events = _scoreboard_events(body)
        states = [_state(event) for event in events]
        if "in" in states:
            return self.live
        ttl = self._by_date(request.url.params.get("dates"), now)
        for event, state in zip(events, states, strict=True):
            if state != "pre":
                continue
            until = _time(event.get("date")) - now
            if -_LATE_START < until <= 0:
                return self.live  # kick-off has passed: the game may start any moment
            if until > 0:
                ttl = min(ttl, max(self.live, math.ceil(until)))
        return ttl

    def _by_date(self, dates: str | None, now: float) -> float:
        today = datetime.fromtimestamp(now, UTC).date()
        span = _date_range(dates)
        if span is None:
            return self.today  # no dates (ESPN's current day), or a form not read here
        start, end = span
        if end < today:
            return self.past
        if start > today:
            return self.future
        return self.today


def _summary_final(body: Any) -> bool:
    """Whether every competition in a summary's header says "post" (finished)."""
    header = body.get("header") if isinstance(body, dict) else None
    competitions = header.get("competitions") if isinstance(header, dict) else None
    if not isinstance(competitions, list) or not competitions:
        return False
    try:
        return all(_state(competition) == "post" for competition in competitions)
    except ValueError:
        return False


@attrs.frozen
class EspnImmutable:
    """Which answers of ESPN's site API stay as they are: kept in quotaflow's cold store
    for ``final`` seconds (``ApiProfile.immutable``; 30 days: stat corrections are rare
    and come early).

    - ``/scoreboard`` asked for by ``dates`` whose every event is finished (state
      ``post``): that day's games are over. A scoreboard without ``dates`` is
      ESPN's current day, which moves on: never.
    - ``/summary`` of a game whose header says it is finished.

    .. versionadded:: 0.3
    """

    final: float = 30 * DAY

    def __call__(self, request: httpx.Request, response: httpx.Response) -> float | None:
        parts = request.url.path.rstrip("/").split("/")
        if parts[1:3] != ["apis", "site"] or len(parts) != 8:
            return None
        if parts[7] not in ("scoreboard", "summary"):
            return None
        if parts[7] == "scoreboard" and _date_range(request.url.params.get("dates")) is None:
            return None  # parsed only when it can be final
        try:
            body = json.loads(response.content)
        except ValueError:
            return None
        if parts[7] == "scoreboard":
            try:
                states = [_state(event) for event in _scoreboard_events(body)]
            except ValueError:
                return None
            return self.final if states and all(state == "post" for state in states) else None
        if parts[7] == "summary":
            return self.final if _summary_final(body) else None
        return None


# How much of a 200 body is looked at for an error's shape: error bodies are small,
# scoreboards are hundreds of kilobytes.
_ERROR_PREFIX = 4096
_ERROR_MARKS = (b'"error"', b'"errors"', b'"code"')
# Keys of the answers this profile knows: an object with one of them is data.
_PAYLOAD = frozenset({"events", "leagues", "header", "boxscore", "sports", "team", "season"})


def _error_shaped(body: Any) -> bool:
    if not isinstance(body, dict) or not _PAYLOAD.isdisjoint(body):
        return False
    if body.get("error") or body.get("errors"):
        return True
    code = body.get("code")
    return isinstance(code, int) and not isinstance(code, bool) and code >= 400


def classify(response: httpx.Response) -> Verdict:
    """``"error"`` for a 2xx whose body is an error object rather than data, else ``"ok"``.

    ESPN's site API is undocumented; errors seen from it are ``{"code": 4xx/5xx,
    "message"}`` and ``{"error": ...}``/``{"errors": [...]}``. Only a body starting
    as an object with one of those keys in its first 4 KiB is parsed.

    .. versionadded:: 0.1
    """
    if not 200 <= response.status_code < 300:
        return "ok"  # statuses speak for themselves
    head = response.content[:_ERROR_PREFIX].lstrip()
    if not head.startswith(b"{") or not any(mark in head for mark in _ERROR_MARKS):
        return "ok"
    try:
        body = json.loads(response.content)
    except ValueError:
        return "ok"
    return "error" if _error_shaped(body) else "ok"


PROFILE = ApiProfile(
    name="espn",
    hosts=("site.api.espn.com",),
    # Nothing is published; two a second is polite for an unofficial API.
    rates=(Rate(2, per=1.0),),
    freshness=EspnFreshness(),
    # An unreadable scoreboard may be a live one: keep it short.
    default_ttl=60,
    max_stale=6 * HOUR,
    classify=classify,
    # The freshness rule and classify read the scoreboard; the API takes no credential.
    reads_body=True,
    shared_answers=True,
    # Finished days and games go to the cold store for 30 days.
    immutable=EspnImmutable(),
)
"""The ``espn`` plugin's profile.

.. versionadded:: 0.1
"""
