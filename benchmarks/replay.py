"""Recorded Odds API answers (the cassettes in ``benchmarks/fixtures``, which
``fixtures/record.py`` records against the local emulator) replayed through respx.

Two ways to replay:

- :func:`router`: each recorded answer on its method and path (any query string),
  the same bytes and headers every time. For timing: put it innermost with
  ``httpx.MockTransport(router.handler)``.
- :class:`OddsApi`: The Odds API "live" on the current (simulated) clock: the recorded
  slates, less the games that are over; scores built for the moment; a credit counter
  with honest ``x-requests-*`` headers; the recorded 401/429/422 bodies when the plan
  is used up, the frequency limit is hit, or a market is unknown. For quota and limiter
  benchmarks under time-machine.

:class:`RouterPool` stands where httpcore's connection pool would under an
``httpx.HTTPTransport`` (for transports that subclass it, like pyrate-limiter's).
"""

from __future__ import annotations

import dataclasses
import email.utils
import functools
import json
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpcore
import httpx
import respx

from quotaflow_theoddsapi import samples

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))

import emulator as emulator  # noqa: E402  (the recorded day's slate and clock)
import record as record  # noqa: E402  (the names of the recorded answers)

from quotaflow.testing import Exchange, read_cassette  # noqa: E402

HOST = "https://api.the-odds-api.com"
API_KEY = "bench-key-not-real"
SPORTS = ("americanfootball_nfl", "basketball_nba", "baseball_mlb", "icehockey_nhl")
ODDS_FIXTURE = {
    "americanfootball_nfl": "odds_nfl",
    "basketball_nba": "odds_nba",
    "baseball_mlb": "odds_mlb",
    "icehockey_nhl": "odds_nhl",
}
VALID_MARKETS = frozenset({"h2h", "spreads", "totals", "outrights"})


@dataclass(frozen=True)
class Fixture:
    """One recorded answer: the request it answered, its status, headers and body."""

    name: str
    method: str
    url: httpx.URL
    status: int
    headers: Mapping[str, str]
    body: bytes

    def response(self, headers: Mapping[str, str] | None = None) -> httpx.Response:
        # A new Response each time over the same bytes (content= would copy nothing either).
        return httpx.Response(
            self.status, headers={**self.headers, **(headers or {})}, content=self.body
        )


def names() -> list[str]:
    """Every recorded answer, by name."""
    return sorted(_recorded())


@functools.cache
def _recorded() -> dict[str, Exchange]:
    """Each cassette's exchanges under the names ``record.py`` gives them, in order."""
    found: dict[str, Exchange] = {}
    for cassette, named in (
        ("odds_day.json", [name for name, _, _ in record.DAY]),
        ("odds_limits.json", record.LIMITS),
    ):
        exchanges = read_cassette(FIXTURES / cassette)
        if len(exchanges) != len(named):
            raise RuntimeError(f"{cassette}: {len(exchanges)} exchanges, expected {len(named)}")
        found |= dict(zip(named, exchanges, strict=True))
    return found


@functools.cache
def load(name: str) -> Fixture:
    exchange = _recorded()[name]
    return Fixture(
        name=name,
        method=exchange.method,
        url=httpx.URL(exchange.url),
        status=exchange.status,
        headers=dict(exchange.headers),
        body=exchange.body,
    )


def router(
    fixtures: Iterable[str] | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    copy: bool = False,
) -> respx.Router:
    """A respx router answering each successful fixture on its method, host and path.

    Error fixtures answer only their exact query (e.g. the 422 for an unknown market),
    and are tried first; ``headers`` are added to every answer. ``copy``: every answer
    gets bytes of its own, as from a network (else all share the recorded bytes).
    """
    chosen = [load(name) for name in (fixtures if fixtures is not None else names())]
    chosen.sort(key=lambda fixture: fixture.status == 200)  # errors first: they are narrower
    found = respx.Router(assert_all_called=False)
    for fixture in chosen:
        if fixture.status in (401, 429):
            continue  # conditions, not requests: OddsApi answers them
        pattern: dict[str, Any] = {
            "method": fixture.method,
            "scheme": fixture.url.scheme,
            "host": fixture.url.host,
            "path": fixture.url.path,
        }
        if fixture.status != 200:
            pattern["params__contains"] = dict(fixture.url.params)
        route = found.route(**pattern)
        merged = {**fixture.headers, **(headers or {})}
        if copy:
            route.mock(side_effect=_copying(fixture.status, merged, fixture.body))
        else:
            # respx answers each request with a clone over the same bytes: the cheapest way.
            route.mock(
                return_value=httpx.Response(fixture.status, headers=merged, content=fixture.body)
            )
    return found


def _copying(
    status: int, headers: Mapping[str, str], body: bytes
) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers, content=bytes(bytearray(body)))

    return answer


@dataclasses.dataclass
class _Calls:
    call_count: int = 0


class PlainRoutes:
    """The successful fixtures answered from a dict on method, host and path: the floor
    the benchmarks measure against is bare httpx over a plain ``httpx.MockTransport``,
    not a respx router (whose route matching costs 10-17% of a request). Counts calls
    like a router (``calls.call_count``, ``reset()``)."""

    def __init__(
        self,
        fixtures: Iterable[str],
        *,
        headers: Mapping[str, str] | None = None,
        copy: bool = False,
    ) -> None:
        self._answers: dict[tuple[str, str, str], tuple[int, list[tuple[str, str]], bytes]] = {}
        for fixture in (load(name) for name in fixtures):
            if fixture.status == 200:
                key = (fixture.method, fixture.url.host, fixture.url.path)
                merged = {**fixture.headers, **(headers or {})}
                self._answers[key] = (fixture.status, list(merged.items()), fixture.body)
        self._copy = copy
        self.calls = _Calls()

    def add(self, fixture: Fixture, headers: Mapping[str, str] | None = None) -> None:
        """Answer one more (made-up) fixture, on its method, host and path."""
        key = (fixture.method, fixture.url.host, fixture.url.path)
        merged = {**fixture.headers, **(headers or {})}
        self._answers[key] = (fixture.status, list(merged.items()), fixture.body)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls.call_count += 1
        status, headers, body = self._answers[(request.method, request.url.host, request.url.path)]
        return httpx.Response(
            status, headers=headers, content=bytes(bytearray(body)) if self._copy else body
        )

    def reset(self) -> None:
        self.calls.call_count = 0


class RouterPool:
    """What httpcore's ConnectionPool does under ``httpx.HTTPTransport``, from a handler.

    ``transport._pool = RouterPool(router.handler)`` turns any HTTPTransport subclass
    into one that answers from the router, converting httpcore <-> httpx as the
    transport's own code expects.
    """

    def __init__(self, handler: Callable[[httpx.Request], httpx.Response]) -> None:
        self._handler = handler

    def _request(self, request: httpcore.Request) -> httpx.Request:
        return httpx.Request(
            request.method.decode("ascii"),
            httpx.URL(bytes(request.url).decode("ascii")),
            headers=request.headers,
            extensions=request.extensions,
        )

    @staticmethod
    def _response(response: httpx.Response) -> httpcore.Response:
        return httpcore.Response(
            status=response.status_code,
            headers=response.headers.raw,
            content=response.read(),
            extensions=response.extensions,
        )

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        return self._response(self._handler(self._request(request)))

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        return self._response(self._handler(self._request(request)))

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def __enter__(self) -> RouterPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    async def __aenter__(self) -> RouterPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pass


def http_date(moment: float) -> str:
    return email.utils.formatdate(moment, usegmt=True)


def _count(value: str | None) -> int:
    return len({part.strip() for part in (value or "").split(",") if part.strip()})


@dataclass
class Answered:
    """One call the simulated API answered."""

    at: float
    resource: str  # the URL without the key
    status: int
    cost: int


@dataclass
class OddsApi:
    """The Odds API v4 on the current clock, answering from the recorded day.

    ``/odds`` lists the recorded slate less the games that are over (and ``[]`` costs
    nothing); ``/scores`` is built for the moment (``daysFrom`` adds completed games);
    ``/events`` lists the slate without odds. Prices follow the documented shapes
    (plugins/theoddsapi/README.md). The frequency limit counts answered calls per
    calendar second (``freq_limit=None``: off). Answers carry the ``Date`` header every
    HTTP server sends.
    """

    plan: int = emulator.PLAN
    used: int = 0
    freq_limit: int | None = 30
    clock: Callable[[], float] = time.time
    log: list[Answered] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _second: tuple[int, int] = (0, 0)

    # What the API would answer, as a pure function of the request and the moment.

    def body(self, request: httpx.Request, now: float) -> tuple[int, bytes, int]:
        """(status, body, price) of the answer at ``now``, before any limit."""
        path = request.url.path.rstrip("/")
        params = request.url.params
        parts = path.split("/")  # ['', 'v4', 'sports', sport, endpoint, ...]
        if path == "/v4/sports":
            return 200, load("sports").body, 0
        if len(parts) != 5 or parts[4] not in ("odds", "scores", "events"):
            return 404, b'{"message":"Unknown endpoint","error_code":"NOT_FOUND"}', 0
        sport, endpoint = parts[3], parts[4]
        if sport not in ODDS_FIXTURE:
            return 404, b'{"message":"Unknown sport","error_code":"UNKNOWN_SPORT"}', 0
        if endpoint == "scores":
            days = params.get("daysFrom")
            events = emulator.scores_events(sport, now, days_from=int(days) if days else None)
            return 200, json.dumps(events).encode(), 2 if days else 1
        markets = tuple(m for m in (params.get("markets") or "h2h").split(",") if m)
        if not set(markets) <= VALID_MARKETS:
            return 422, load("error_422_invalid_market").body, 0
        wanted = frozenset(i for i in (params.get("eventIds") or "").split(",") if i)
        live = tuple(
            event["id"]
            for event in _slate(sport)
            if _ends(sport, event) > now and (not wanted or event["id"] in wanted)
        )
        if endpoint == "events":
            return 200, _events_body(sport, live), 0
        if not live:
            return 200, b"[]", 0
        bookmakers = _count(params.get("bookmakers"))
        regions = math.ceil(bookmakers / 10) if bookmakers else (_count(params.get("regions")) or 1)
        return 200, _odds_body(sport, live, markets), len(set(markets)) * regions

    # The API itself: limits, credits, headers, the log.

    def handler(self, request: httpx.Request) -> httpx.Response:
        now = self.clock()
        resource = str(request.url.copy_remove_param("apiKey"))
        if request.url.params.get("apiKey") != API_KEY:
            return self._error(now, resource, 401, "MISSING_KEY", "API key is missing")
        status, body, price = self.body(request, now)
        with self._lock:
            second, count = self._second
            if self.freq_limit is not None and int(now) == second and count >= self.freq_limit:
                fixture = load("error_429_exceeded_freq_limit")
                self.log.append(Answered(now, resource, 429, 0))
                return fixture.response({"date": http_date(now)})
            if status == 200 and self.used + price > self.plan:
                fixture = load("error_401_out_of_usage_credits")
                self.log.append(Answered(now, resource, 401, 0))
                return fixture.response({"date": http_date(now)})
            self._second = (int(now), count + 1 if int(now) == second else 1)
            cost = price if status == 200 else 0
            self.used += cost
            used, remaining = self.used, self.plan - self.used
            self.log.append(Answered(now, resource, status, cost))
        headers = {
            "content-type": "application/json",
            "date": http_date(now),
            "x-requests-remaining": str(remaining),
            "x-requests-used": str(used),
            "x-requests-last": str(cost),
        }
        return httpx.Response(status, headers=headers, content=body)

    def _error(
        self, now: float, resource: str, status: int, code: str, text: str
    ) -> httpx.Response:
        with self._lock:
            self.log.append(Answered(now, resource, status, 0))
        response = samples.error(status, code, text)
        response.headers["date"] = http_date(now)
        return response

    def router(self) -> respx.Router:
        found = respx.Router(assert_all_called=False)
        found.route(method="GET", host="api.the-odds-api.com", path__startswith="/v4/").mock(
            side_effect=self.handler
        )
        return found

    @property
    def calls(self) -> int:
        """Upstream calls answered (any status)."""
        return len(self.log)

    @property
    def spent(self) -> int:
        return sum(answer.cost for answer in self.log)


@functools.cache
def _slate(sport: str) -> tuple[dict[str, Any], ...]:
    return tuple(json.loads(load(ODDS_FIXTURE[sport]).body))


def _ends(sport: str, event: dict[str, Any]) -> float:
    kickoff = _parse_time(event["commence_time"])
    return kickoff + emulator.DURATION[sport]


@functools.cache
def _parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@functools.lru_cache(maxsize=256)
def _odds_body(sport: str, ids: tuple[str, ...], markets: tuple[str, ...]) -> bytes:
    slate = _slate(sport)
    if len(ids) == len(slate) and set(markets) == set(emulator.MARKETS):
        return load(ODDS_FIXTURE[sport]).body  # the recorded bytes, as they are
    wanted, keep = set(ids), set(markets)
    events = []
    for event in slate:
        if event["id"] not in wanted:
            continue
        bookmakers = [
            {**book, "markets": [m for m in book["markets"] if m["key"] in keep]}
            for book in event["bookmakers"]
        ]
        events.append({**event, "bookmakers": bookmakers})
    return json.dumps(events).encode()


@functools.lru_cache(maxsize=256)
def _events_body(sport: str, ids: tuple[str, ...]) -> bytes:
    wanted = set(ids)
    return json.dumps(
        [
            {k: v for k, v in event.items() if k != "bookmakers"}
            for event in _slate(sport)
            if event["id"] in wanted
        ]
    ).encode()
