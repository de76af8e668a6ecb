"""The Odds API v4, from its documentation (https://the-odds-api.com/liveapi/guides/v4/;
the facts used are listed in the plugin's README.md)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
import httpx

from quotaflow.profiles import (
    ApiProfile,
    Quota,
    QuotaHeaders,
    QuotaReading,
    Rate,
    Snapshot,
    Verdict,
)

_SPORT = r"/v4/sports/[^/]+"
_HISTORICAL = r"/v4/historical/sports/[^/]+"
_EVENT = r"/events/[^/]+"

# (path pattern, base cost, whether markets x regions multiply it); first match wins.
_COSTS: Sequence[tuple[re.Pattern[str], int, bool]] = [
    (re.compile(r"/v4/sports/?$"), 0, False),
    (re.compile(_SPORT + r"/odds/?$"), 1, True),
    (re.compile(_SPORT + r"/scores/?$"), 1, False),
    (re.compile(_SPORT + r"/events/?$"), 0, False),
    (re.compile(_SPORT + _EVENT + r"/odds/?$"), 1, True),
    (re.compile(_SPORT + _EVENT + r"/markets/?$"), 1, False),
    (re.compile(_SPORT + r"/participants/?$"), 1, False),
    (re.compile(_HISTORICAL + r"/odds/?$"), 10, True),
    (re.compile(_HISTORICAL + r"/events/?$"), 1, False),
    (re.compile(_HISTORICAL + _EVENT + r"/odds/?$"), 10, True),
]


def _count(value: str | None) -> int:
    return len({part.strip() for part in (value or "").split(",") if part.strip()})


def cost(request: httpx.Request) -> int:
    """Quota units a request is expected to cost, before it is sent.

    Odds cost markets x regions (``markets`` defaults to ``h2h``; every 10
    ``bookmakers`` count as one region and win over ``regions``); historical
    odds cost ten times that; ``daysFrom`` doubles the scores cost; listings of
    sports and events are free. An answer with no events costs nothing, which only
    the answer can tell (see :func:`read_quota`).
    """
    path = request.url.path.rstrip("/")
    params = request.url.params
    for pattern, base, multiplied in _COSTS:
        if not pattern.search(path):
            continue
        if path.endswith("/scores") and params.get("daysFrom"):
            return 2
        if not multiplied:
            return base
        markets = _count(params.get("markets")) or 1
        bookmakers = _count(params.get("bookmakers"))
        regions = math.ceil(bookmakers / 10) if bookmakers else (_count(params.get("regions")) or 1)
        return base * markets * regions
    return 1


_HEADERS = QuotaHeaders(
    remaining="x-requests-remaining", used="x-requests-used", last="x-requests-last"
)


def read_quota(response: httpx.Response) -> QuotaReading:
    """The ``x-requests-*`` headers; an empty list with no report costs nothing."""
    reading = _HEADERS(response)
    if reading.last is None and response.is_success and response.content.strip() == b"[]":
        reading = attrs.evolve(reading, last=0)
    return reading


# How much of a 200 body is looked at for an error's shape: error bodies are a few
# hundred bytes, answers may be megabytes.
_ERROR_PREFIX = 4096


def _error_code(response: httpx.Response) -> str | None:
    """The ``error_code`` of an error-shaped body (``{"message", "error_code", ...}``),
    ``""`` for one without a code, None for anything else. Answers are lists, or objects
    with ``data`` (historical) or ``id`` (one event), so only an object with ``message``
    or ``error_code`` near its start is parsed."""
    head = response.content[:_ERROR_PREFIX].lstrip()
    if not head.startswith(b"{") or (b'"error_code"' not in head and b'"message"' not in head):
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    if not isinstance(body, dict) or "data" in body or "id" in body:
        return None
    code = body.get("error_code")
    if isinstance(code, str):
        return code
    return "" if "message" in body else None


def classify(response: httpx.Response) -> Verdict:
    """Quota exhaustion is a 401 with ``OUT_OF_USAGE_CREDITS``, not a 429. A 200 whose
    body is an error (``{"message", "error_code"}``) is an error: never stored, never
    standing in for the last good answer."""
    status = response.status_code
    if status != 401 and not 200 <= status < 300:
        return "ok"
    code = _error_code(response)
    if status == 401:
        return "quota_exhausted" if code == "OUT_OF_USAGE_CREDITS" else "ok"
    return "ok" if code is None else "error"


def _parse_time(value: Any) -> float:
    """ISO 8601 (the default) or epoch seconds (``dateFormat=unix``)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"commence_time is neither ISO 8601 nor epoch seconds: {value!r}")
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _events(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict) and "data" in body:  # historical wrapper
        body = body["data"]
    if isinstance(body, dict):  # a single event's odds
        body = [body]
    if not isinstance(body, list) or not all(isinstance(event, dict) for event in body):
        raise ValueError("expected a list of events")
    return body


@attrs.frozen
class OddsApiFreshness:
    """How long an answer of The Odds API stays fresh, in seconds.

    Odds follow the nearest kick-off: the provider refreshes featured markets every
    60 s before a game and 40 s in play, faster from six hours out. Every threshold
    is a setting: ``attrs.evolve(PROFILE, freshness=OddsApiFreshness(live=30))``.
    """

    live: float = 40
    within_1h: float = 60
    within_6h: float = 120
    within_24h: float = 300
    later: float = 900
    no_events: float = 900
    scores_live: float = 30
    scores_pending: float = 600
    scores_completed: float = 86400
    listings: float = 6 * 3600
    markets: float = 300
    historical: float = 30 * 86400

    def __call__(
        self, request: httpx.Request, response: httpx.Response, now: float
    ) -> float | None:
        path = request.url.path.rstrip("/")
        if path.startswith("/v4/historical/"):
            return self.historical  # snapshots never change
        if path == "/v4/sports" or path.endswith(("/events", "/participants")):
            return self.listings
        if path.endswith("/markets"):
            return self.markets
        if path.endswith("/odds"):
            return self._odds(_events(json.loads(response.content)), now)
        if path.endswith("/scores"):
            return self._scores(_events(json.loads(response.content)), now)
        return None

    def _odds(self, events: list[dict[str, Any]], now: float) -> float:
        if not events:
            return self.no_events
        until = min(_parse_time(event.get("commence_time")) for event in events) - now
        if until <= 0:
            return self.live
        for limit, ttl in (
            (3600, self.within_1h),
            (6 * 3600, self.within_6h),
            (86400, self.within_24h),
        ):
            if until < limit:
                return ttl
        return self.later

    def _scores(self, events: list[dict[str, Any]], now: float) -> float:
        if events and all(event.get("completed") is True for event in events):
            return self.scores_completed
        for event in events:
            if not event.get("completed") and _parse_time(event.get("commence_time")) <= now:
                return self.scores_live
        return self.scores_pending


_HISTORICAL_PATH = re.compile(_HISTORICAL + r"(?:/odds|/events|" + _EVENT + r"/odds)/?$")

# Historical snapshots are taken on 5-minute marks (10-minute ones before September
# 2022); the API answers a ``date`` with the nearest snapshot at or before it.
SNAPSHOT_GRID = 300


def _historical(request: httpx.Request) -> bool:
    return _HISTORICAL_PATH.search(request.url.path) is not None


def _date(request: httpx.Request) -> datetime | None:
    value = request.url.params.get("date")
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def normalize(request: httpx.Request) -> httpx.URL | None:
    """A historical request's ``date`` rounded down to the 5-minute snapshot grid: the
    API answers both with the same snapshot, the nearest at or before ``date``.

    Rounded to 5 minutes even before September 2022, when snapshots were 10 minutes
    apart: a 5-minute mark is never past the snapshot the API would pick, whereas a
    10-minute grid may not be the one the snapshots sat on (the provider's own example
    has them at :45, :55, :05). Requests between two snapshots of that era share the
    earlier one's answer through its window instead (:func:`snapshot`).
    """
    if not _historical(request):
        return None
    moment = _date(request)
    if moment is None:
        return None
    seconds = int(moment.timestamp())
    rounded = seconds - seconds % SNAPSHOT_GRID
    text = datetime.fromtimestamp(rounded, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if text == request.url.params.get("date"):
        return None
    return request.url.copy_set_param("date", text)


def _wrapper(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) and "data" in body and "timestamp" in body else None


def _moment(value: Any) -> float | None:
    try:
        return _parse_time(value)
    except (ValueError, TypeError):
        return None


def snapshot(request: httpx.Request, response: httpx.Response | None) -> Snapshot | None:
    """For a historical request, the moment it asks for (its ``date``); for a
    historical answer, the window it covers: from its ``timestamp`` up to its
    ``next_timestamp`` the API gives that same snapshot. The series is the request
    without ``date`` (the stack hands it over without the key)."""
    if not _historical(request):
        return None
    series = str(request.url.copy_remove_param("date"))
    if response is None:
        moment = _date(request)
        return None if moment is None else Snapshot(series, moment.timestamp(), moment.timestamp())
    body = _wrapper(response)
    if body is None:
        return None
    start, end = _moment(body.get("timestamp")), _moment(body.get("next_timestamp"))
    if start is None or end is None or end <= start:
        return None
    return Snapshot(series, start, end)


@attrs.frozen
class OddsApiImmutable:
    """Which answers of The Odds API never change (or not for a long time): kept in
    quotaflow's cold store for that long (``ApiProfile.immutable``).

    - Historical snapshots (``/v4/historical/...``) that have a ``next_timestamp``:
      a snapshot never changes, and a later one exists, so the answer to that
      ``date`` is final. (The latest snapshot, ``next_timestamp`` null, is not: a
      newer one may yet be taken at or before ``date``.)
    - ``/scores`` asked for by ``eventIds`` whose every event came back completed:
      ``completed_scores`` seconds (30 days; scores are corrected rarely). A
      ``/scores`` list without ``eventIds`` is not: games enter and leave it.
    """

    completed_scores: float = 30 * 86400

    def __call__(self, request: httpx.Request, response: httpx.Response) -> float | None:
        if _historical(request):
            body = _wrapper(response)
            if body is None or _moment(body.get("next_timestamp")) is None:
                return None
            return math.inf
        if request.url.path.rstrip("/").endswith("/scores"):
            return self._scores(request, response)
        return None

    def _scores(self, request: httpx.Request, response: httpx.Response) -> float | None:
        asked = {part.strip() for part in request.url.params.get("eventIds", "").split(",")}
        asked.discard("")
        if not asked:
            return None
        events = _events(json.loads(response.content))
        got = {event.get("id") for event in events}
        if got != asked or not all(event.get("completed") is True for event in events):
            return None
        return self.completed_scores


PROFILE = ApiProfile(
    name="theoddsapi",
    hosts=("api.the-odds-api.com", "ipv6-api.the-odds-api.com"),
    # About 30 calls a second before EXCEEDED_FREQ_LIMIT.
    rates=(Rate(30, per=1.0, burst=30),),
    # The free tier; the real size is learned from x-requests-used + x-requests-remaining.
    quota=Quota(500, period="month"),
    cost=cost,
    read_quota=read_quota,
    freshness=OddsApiFreshness(),
    default_ttl=60,
    # A stored answer stands in for a failed or refused call for a day, but a CRITICAL
    # request (odds just before kick-off) for 15 minutes only, HIGH for an hour: past
    # that they get the error, never day-old odds as if they were today's.
    max_stale={"critical": 15 * 60, "high": 3600, "normal": 24 * 3600},
    # The documentation says apiKey; the official samples send api_key.
    secret_params=("apiKey", "api_key"),
    # Free (0 credits) and answered with the quota headers: a lost ledger is synced
    # before anything is spent on a guess (the-odds-api.com/liveapi/guides/v4, "sports").
    probe="/v4/sports",
    classify=classify,
    # Freshness follows the nearest kick-off in the body; an empty list costs nothing.
    reads_body=True,
    # Odds are the same for every key: keys share stored answers (each key is still
    # its own quota in the ledger).
    shared_answers=True,
    # Historical snapshots and completed scores go to the cold store; a historical
    # date is rounded onto the snapshot grid, and a stored snapshot answers every
    # date in its window.
    immutable=OddsApiImmutable(),
    normalize=normalize,
    snapshot=snapshot,
)
