"""A small typed client of The Odds API v4, for any ``httpx.Client`` or ``httpx.AsyncClient``.

It builds requests and parses the documented answer shapes (see the plugin's README.md);
the client it is given does the sending. With ``quotaflow.make_client()`` the answers are
cached, rate-limited and quota-checked; with a plain ``httpx.Client`` it works the same,
so moving to quotaflow is a one-line change.

Errors::

    OddsApiError     the API answered with an error (its documented JSON, or an
                     undocumented failure), or with a body of an unexpected shape

Errors of the client underneath (``httpx.HTTPError``, and so quotaflow's
``QuotaExhausted`` or ``RateLimited``) pass through unchanged.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeAlias, TypeVar

import attrs
import httpx

from quotaflow import ResponseInfo

__all__ = [
    "AsyncOddsApi",
    "Bookmaker",
    "Event",
    "EventScore",
    "Market",
    "OddsApi",
    "OddsApiError",
    "Outcome",
    "Score",
    "Sport",
    "Usage",
]

T = TypeVar("T")
OddsFormat: TypeAlias = Literal["decimal", "american"]
DateFormat: TypeAlias = Literal["iso", "unix"]
Names: TypeAlias = str | Sequence[str]

DEFAULT_BASE_URL = "https://api.the-odds-api.com"


class OddsApiError(Exception):
    """The Odds API answered with an error, or with a body this client cannot read.

    Attributes:
        code: the documented ``error_code`` (``"OUT_OF_USAGE_CREDITS"``,
            ``"INVALID_KEY"``, ``"UNKNOWN_SPORT"``...), or None when the answer
            carried none (an undocumented failure or an unreadable body).
        message: the API's ``message``, or a description of what went wrong.
        status: the HTTP status of the answer.
        details_url: the API's ``details_url``, when it sent one.

    .. versionadded:: 0.1
    """

    def __init__(
        self, code: str | None, message: str, status: int, details_url: str | None = None
    ) -> None:
        super().__init__(f"{code or 'HTTP ' + str(status)}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.details_url = details_url


@attrs.frozen
class Usage:
    """The quota as the last answer's ``x-requests-*`` headers told it; None when unknown.

    An answer quotaflow served from its cache cost nothing (``last`` 0), and
    ``remaining`` is then what quotaflow's ledger knows of this key (the stored headers
    may be another key's: odds are shared by every key).

    Attributes:
        remaining: credits left this period (may be negative).
        used: credits used since the period began (cumulative).
        last: what the answered call cost.

    .. versionadded:: 0.1
    """

    remaining: int | None = None
    used: int | None = None
    last: int | None = None


@attrs.frozen
class Sport:
    """One item of ``GET /v4/sports``.

    .. versionadded:: 0.1
    """

    key: str
    group: str = ""
    title: str = ""
    description: str = ""
    active: bool = True
    has_outrights: bool = False


@attrs.frozen
class Outcome:
    """One outcome of a market: ``price`` decimal (``1.91``) or American (``-110``).

    ``point`` is the handicap or total, only on spreads and totals.

    .. versionadded:: 0.1
    """

    name: str
    price: float
    point: float | None = None


@attrs.frozen
class Market:
    """One market (``h2h``, ``spreads``, ``totals``, ``outrights``...) of a bookmaker.

    .. versionadded:: 0.1
    """

    key: str
    outcomes: tuple[Outcome, ...] = ()
    last_update: datetime | None = None


@attrs.frozen
class Bookmaker:
    """One bookmaker's markets for an event.

    .. versionadded:: 0.1
    """

    key: str
    title: str = ""
    last_update: datetime | None = None
    markets: tuple[Market, ...] = ()


@attrs.frozen
class Event:
    """An event of ``/odds``, ``/events`` or ``/events/{id}/odds``.

    ``home_team`` and ``away_team`` are None for outrights; ``bookmakers`` is empty
    for ``/events``, which lists events without odds.

    .. versionadded:: 0.1
    """

    id: str
    sport_key: str
    commence_time: datetime
    sport_title: str = ""
    home_team: str | None = None
    away_team: str | None = None
    bookmakers: tuple[Bookmaker, ...] = ()


@attrs.frozen
class Score:
    """One team's score; the API sends scores as strings.

    .. versionadded:: 0.1
    """

    name: str
    score: str


@attrs.frozen
class EventScore:
    """An event of ``/scores``: ``scores`` and ``last_update`` are None before it starts.

    .. versionadded:: 0.1
    """

    id: str
    sport_key: str
    commence_time: datetime
    completed: bool = False
    sport_title: str = ""
    home_team: str | None = None
    away_team: str | None = None
    scores: tuple[Score, ...] | None = None
    last_update: datetime | None = None


# -- parsing: tolerant of unknown fields and missing optional ones, strict on the rest --


class _Malformed(ValueError):
    """The body does not have the documented shape. Strictly private."""


def _field(item: Mapping[str, Any], name: str, kind: type[T]) -> T:
    value = item.get(name)
    if not isinstance(value, kind):
        raise _Malformed(f"{name!r} is missing or not of the documented type: {value!r}")
    return value


def _optional(item: Mapping[str, Any], name: str, kind: type[T], default: T) -> T:
    value = item.get(name)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise _Malformed(f"{name!r} is not of the documented type: {value!r}")
    return value


def _text(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    if value is not None and not isinstance(value, str):
        raise _Malformed(f"{name!r} is not text: {value!r}")
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Malformed(f"{name!r} is not a number: {value!r}")
    return float(value)


def _time(value: Any, name: str) -> datetime:
    """ISO 8601 UTC with ``Z`` (``dateFormat=iso``) or epoch seconds (``dateFormat=unix``)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise _Malformed(f"{name!r} is not a time: {value!r}") from exc
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise _Malformed(f"{name!r} is not a time: {value!r}") from exc
        # A time without an offset is UTC, as every time the API writes.
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    raise _Malformed(f"{name!r} is not a time: {value!r}")


def _optional_time(item: Mapping[str, Any], name: str) -> datetime | None:
    value = item.get(name)
    return None if value is None else _time(value, name)


def _items(value: Any, name: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise _Malformed(f"{name} is not a list of objects")
    return value


def _sport(item: Mapping[str, Any]) -> Sport:
    return Sport(
        key=_field(item, "key", str),
        group=_optional(item, "group", str, ""),
        title=_optional(item, "title", str, ""),
        description=_optional(item, "description", str, ""),
        active=_optional(item, "active", bool, True),
        has_outrights=_optional(item, "has_outrights", bool, False),
    )


def _outcome(item: Mapping[str, Any]) -> Outcome:
    point = item.get("point")
    return Outcome(
        name=_field(item, "name", str),
        price=_number(item.get("price"), "price"),
        point=None if point is None else _number(point, "point"),
    )


def _market(item: Mapping[str, Any]) -> Market:
    return Market(
        key=_field(item, "key", str),
        outcomes=tuple(_outcome(o) for o in _items(item.get("outcomes", []), "outcomes")),
        last_update=_optional_time(item, "last_update"),
    )


def _bookmaker(item: Mapping[str, Any]) -> Bookmaker:
    return Bookmaker(
        key=_field(item, "key", str),
        title=_optional(item, "title", str, ""),
        last_update=_optional_time(item, "last_update"),
        markets=tuple(_market(m) for m in _items(item.get("markets", []), "markets")),
    )


def _event(item: Mapping[str, Any]) -> Event:
    return Event(
        id=_field(item, "id", str),
        sport_key=_field(item, "sport_key", str),
        commence_time=_time(item.get("commence_time"), "commence_time"),
        sport_title=_optional(item, "sport_title", str, ""),
        home_team=_text(item, "home_team"),
        away_team=_text(item, "away_team"),
        bookmakers=tuple(_bookmaker(b) for b in _items(item.get("bookmakers", []), "bookmakers")),
    )


def _score(item: Mapping[str, Any]) -> Score:
    value = item.get("score")
    # Scores are strings; a number is read as its text rather than refused.
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    return Score(name=_field(item, "name", str), score=_field({"score": value}, "score", str))


def _event_score(item: Mapping[str, Any]) -> EventScore:
    scores = item.get("scores")
    return EventScore(
        id=_field(item, "id", str),
        sport_key=_field(item, "sport_key", str),
        commence_time=_time(item.get("commence_time"), "commence_time"),
        completed=_optional(item, "completed", bool, False),
        sport_title=_optional(item, "sport_title", str, ""),
        home_team=_text(item, "home_team"),
        away_team=_text(item, "away_team"),
        scores=None if scores is None else tuple(_score(s) for s in _items(scores, "scores")),
        last_update=_optional_time(item, "last_update"),
    )


def _list_of(parse: Callable[[Mapping[str, Any]], T]) -> Callable[[Any], list[T]]:
    def parse_list(body: Any) -> list[T]:
        return [parse(item) for item in _items(body, "the body")]

    return parse_list


def _single_event(body: Any) -> Event:
    if not isinstance(body, dict):
        raise _Malformed("the body is not an object")
    return _event(body)


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and abs(value) <= 2**53 else None


def _usage(response: httpx.Response) -> Usage:
    info = response.extensions.get("quotaflow")
    if isinstance(info, ResponseInfo) and info.cache in ("hit", "stale"):
        # From the cache: its headers are the fetch's, perhaps with another key (odds are
        # shared by every key). The ledger's word for this key is what holds now.
        return Usage(remaining=info.remaining, used=None, last=0)
    headers = response.headers
    return Usage(
        remaining=_int_header(headers, "x-requests-remaining"),
        used=_int_header(headers, "x-requests-used"),
        last=_int_header(headers, "x-requests-last"),
    )


def _error(response: httpx.Response) -> OddsApiError:
    """The documented ``{"message", "error_code", "details_url"}``, else the status."""
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        code = body.get("error_code")
        details = body.get("details_url")
        return OddsApiError(
            code if isinstance(code, str) else None,
            body["message"],
            response.status_code,
            details if isinstance(details, str) else None,
        )
    text = response.text.strip()[:200] or response.reason_phrase
    return OddsApiError(None, text, response.status_code)


# -- requests: built once, sent by either twin --


@attrs.frozen
class _Query(Generic[T]):
    """One call: the path and parameters to send, how to read the answer. Strictly private."""

    path: str
    params: dict[str, str]
    parse: Callable[[Any], T]

    def read(self, response: httpx.Response) -> T:
        if not response.is_success:
            raise _error(response)
        try:
            return self.parse(json.loads(response.content))
        except ValueError as exc:  # _Malformed included
            raise OddsApiError(
                None, f"unexpected answer to {self.path}: {exc}", response.status_code
            ) from exc


def _join(value: Names) -> str:
    return value if isinstance(value, str) else ",".join(value)


def _iso(moment: datetime, name: str) -> str:
    """The API takes ``YYYY-MM-DDTHH:MM:SSZ``; a naive time is refused, not guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name}: expected a timezone-aware datetime, not {moment!r}")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _segment(value: str, name: str) -> str:
    if not value or "/" in value or value in (".", ".."):
        raise ValueError(f"{name}: {value!r} is not a valid path segment")
    return value


def _common(
    params: dict[str, str],
    *,
    date_format: DateFormat,
    event_ids: Names | None = None,
    commence_time_from: datetime | None = None,
    commence_time_to: datetime | None = None,
) -> dict[str, str]:
    if date_format != "iso":
        params["dateFormat"] = date_format
    if event_ids is not None:
        params["eventIds"] = _join(event_ids)
    if commence_time_from is not None:
        params["commenceTimeFrom"] = _iso(commence_time_from, "commence_time_from")
    if commence_time_to is not None:
        params["commenceTimeTo"] = _iso(commence_time_to, "commence_time_to")
    return params


def _odds_params(
    regions: Names | None,
    markets: Names,
    odds_format: OddsFormat,
    bookmakers: Names | None,
) -> dict[str, str]:
    params: dict[str, str] = {}
    # bookmakers wins over regions; with neither, the API would refuse (MISSING_REGION).
    if regions is not None or bookmakers is None:
        params["regions"] = _join(regions if regions is not None else "us")
    if bookmakers is not None:
        params["bookmakers"] = _join(bookmakers)
    params["markets"] = _join(markets)
    params["oddsFormat"] = odds_format
    return params


def _profile_of(client: httpx.Client, url: str) -> str | None:
    """The name of the profile a quotaflow client gives ``url``; None for another client."""
    import quotaflow

    try:
        return quotaflow.plan(client, [url]).requests[0].profile
    except (TypeError, quotaflow.QuotaflowError):  # not quotaflow's, or its state is away
        return None


async def _aprofile_of(client: httpx.AsyncClient, url: str) -> str | None:
    """:func:`_profile_of` for an async client."""
    import quotaflow

    try:
        return (await quotaflow.aplan(client, [url])).requests[0].profile
    except (TypeError, quotaflow.QuotaflowError):
        return None


class _Calls:
    """Builds each endpoint's :class:`_Query`. Strictly private."""

    def __init__(self, api_key: str | None, base_url: str) -> None:
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self._usage = Usage()

    def _probe(self) -> str:
        # Free (/v4/sports costs 0) and under every profile a base URL could match.
        return self._base_url + "/v4/sports"

    def _warn_unmatched(self, profile: str | None, stacklevel: int) -> None:
        """A quotaflow client that gives base_url no profile would send every call
        with no cache, rate limit or quota: say so once, when the client is made."""
        if profile == "default":
            warnings.warn(
                f"{type(self).__name__}: base_url {self._base_url!r} matches no profile of "
                "this quotaflow client, so its calls get no cache, rate limit or quota; "
                "add its host (with its port) to a profile's hosts",
                UserWarning,
                stacklevel=stacklevel + 1,
            )

    @property
    def usage(self) -> Usage:
        """The quota as the last answer's ``x-requests-*`` headers told it."""
        return self._usage

    def _url(self, query: _Query[Any]) -> tuple[str, dict[str, str]]:
        params = dict(query.params)
        if self._api_key is not None:
            params["apiKey"] = self._api_key
        return self._base_url + query.path, params

    def _read(self, query: _Query[T], response: httpx.Response) -> T:
        self._usage = _usage(response)
        return query.read(response)

    @staticmethod
    def _sports(all: bool) -> _Query[list[Sport]]:
        return _Query("/v4/sports", {"all": "true"} if all else {}, _list_of(_sport))

    @staticmethod
    def _odds(
        sport: str,
        regions: Names | None,
        markets: Names,
        odds_format: OddsFormat,
        date_format: DateFormat,
        bookmakers: Names | None,
        event_ids: Names | None,
        commence_time_from: datetime | None,
        commence_time_to: datetime | None,
    ) -> _Query[list[Event]]:
        params = _common(
            _odds_params(regions, markets, odds_format, bookmakers),
            date_format=date_format,
            event_ids=event_ids,
            commence_time_from=commence_time_from,
            commence_time_to=commence_time_to,
        )
        return _Query(f"/v4/sports/{_segment(sport, 'sport')}/odds", params, _list_of(_event))

    @staticmethod
    def _scores(
        sport: str, days_from: int | None, date_format: DateFormat, event_ids: Names | None
    ) -> _Query[list[EventScore]]:
        params: dict[str, str] = {}
        if days_from is not None:
            if isinstance(days_from, bool) or days_from not in (1, 2, 3):
                raise ValueError(f"days_from: expected 1, 2 or 3, not {days_from!r}")
            params["daysFrom"] = str(days_from)
        params = _common(params, date_format=date_format, event_ids=event_ids)
        path = f"/v4/sports/{_segment(sport, 'sport')}/scores"
        return _Query(path, params, _list_of(_event_score))

    @staticmethod
    def _events(
        sport: str,
        date_format: DateFormat,
        event_ids: Names | None,
        commence_time_from: datetime | None,
        commence_time_to: datetime | None,
    ) -> _Query[list[Event]]:
        params = _common(
            {},
            date_format=date_format,
            event_ids=event_ids,
            commence_time_from=commence_time_from,
            commence_time_to=commence_time_to,
        )
        return _Query(f"/v4/sports/{_segment(sport, 'sport')}/events", params, _list_of(_event))

    @staticmethod
    def _event_odds(
        sport: str,
        event_id: str,
        regions: Names | None,
        markets: Names,
        odds_format: OddsFormat,
        date_format: DateFormat,
        bookmakers: Names | None,
    ) -> _Query[Event]:
        params = _common(
            _odds_params(regions, markets, odds_format, bookmakers), date_format=date_format
        )
        path = f"/v4/sports/{_segment(sport, 'sport')}/events/{_segment(event_id, 'event_id')}/odds"
        return _Query(path, params, _single_event)


class OddsApi(_Calls):
    """The Odds API v4 through any ``httpx.Client``.

    Args:
        client: sends the requests: ``quotaflow.make_client()`` or a plain ``httpx.Client``.
        api_key: sent as ``apiKey``; leave it None when the client already adds it
            (``make_client(params={"apiKey": KEY})``).
        base_url: where the API lives.

    Every method raises :class:`OddsApiError` when the API answers with an error or
    an unexpected body, and ``ValueError`` for arguments it cannot send. Errors of
    the client (``httpx.HTTPError``, quotaflow's ``QuotaExhausted``...) pass through.

    Warns:
        UserWarning: once, when made, if ``client`` is a quotaflow client none of whose
            profiles matches ``base_url`` (a local stub, a host without its port...):
            its calls would get no cache, rate limit or quota. :class:`AsyncOddsApi`
            warns on its first call.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       Warns when ``base_url`` matches no profile.
    """

    def __init__(
        self, client: httpx.Client, api_key: str | None = None, base_url: str = DEFAULT_BASE_URL
    ) -> None:
        super().__init__(api_key, base_url)
        self._client = client
        self._warn_unmatched(_profile_of(client, self._probe()), stacklevel=2)

    def _send(self, query: _Query[T]) -> T:
        url, params = self._url(query)
        response = self._client.get(url, params=params)
        return self._read(query, response)

    def sports(self, all: bool = False) -> list[Sport]:
        """``GET /v4/sports`` (free): in-season sports; ``all=True`` adds the others."""
        return self._send(self._sports(all))

    def odds(
        self,
        sport: str,
        regions: Names | None = None,
        markets: Names = ("h2h",),
        odds_format: OddsFormat = "decimal",
        date_format: DateFormat = "iso",
        bookmakers: Names | None = None,
        event_ids: Names | None = None,
        commence_time_from: datetime | None = None,
        commence_time_to: datetime | None = None,
    ) -> list[Event]:
        """``GET /v4/sports/{sport}/odds``, costing markets x regions.

        ``regions`` defaults to ``us`` unless ``bookmakers`` is given (which wins over
        regions; every 10 bookmakers cost as one region). Names are a comma-separated
        string or a sequence.
        """
        query = self._odds(
            sport,
            regions,
            markets,
            odds_format,
            date_format,
            bookmakers,
            event_ids,
            commence_time_from,
            commence_time_to,
        )
        return self._send(query)

    def scores(
        self,
        sport: str,
        days_from: int | None = None,
        date_format: DateFormat = "iso",
        event_ids: Names | None = None,
    ) -> list[EventScore]:
        """``GET /v4/sports/{sport}/scores``: live and upcoming, plus ``days_from`` (1..3)."""
        return self._send(self._scores(sport, days_from, date_format, event_ids))

    def events(
        self,
        sport: str,
        date_format: DateFormat = "iso",
        event_ids: Names | None = None,
        commence_time_from: datetime | None = None,
        commence_time_to: datetime | None = None,
    ) -> list[Event]:
        """``GET /v4/sports/{sport}/events`` (free): events without odds."""
        query = self._events(sport, date_format, event_ids, commence_time_from, commence_time_to)
        return self._send(query)

    def event_odds(
        self,
        sport: str,
        event_id: str,
        regions: Names | None = None,
        markets: Names = ("h2h",),
        odds_format: OddsFormat = "decimal",
        date_format: DateFormat = "iso",
        bookmakers: Names | None = None,
    ) -> Event:
        """``GET /v4/sports/{sport}/events/{event_id}/odds``: any market of one event."""
        query = self._event_odds(
            sport, event_id, regions, markets, odds_format, date_format, bookmakers
        )
        return self._send(query)


class AsyncOddsApi(_Calls):
    """Async twin of :class:`OddsApi`, for any ``httpx.AsyncClient``.

    .. versionadded:: 0.1
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        api_key: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
    ) -> None:
        super().__init__(api_key, base_url)
        self._client = client
        self._checked = False

    async def _send(self, query: _Query[T]) -> T:
        if not self._checked:  # aplan() must be awaited: on the first call
            self._checked = True
            self._warn_unmatched(await _aprofile_of(self._client, self._probe()), stacklevel=3)
        url, params = self._url(query)
        response = await self._client.get(url, params=params)
        return self._read(query, response)

    async def sports(self, all: bool = False) -> list[Sport]:
        """See :meth:`OddsApi.sports`."""
        return await self._send(self._sports(all))

    async def odds(
        self,
        sport: str,
        regions: Names | None = None,
        markets: Names = ("h2h",),
        odds_format: OddsFormat = "decimal",
        date_format: DateFormat = "iso",
        bookmakers: Names | None = None,
        event_ids: Names | None = None,
        commence_time_from: datetime | None = None,
        commence_time_to: datetime | None = None,
    ) -> list[Event]:
        """See :meth:`OddsApi.odds`."""
        query = self._odds(
            sport,
            regions,
            markets,
            odds_format,
            date_format,
            bookmakers,
            event_ids,
            commence_time_from,
            commence_time_to,
        )
        return await self._send(query)

    async def scores(
        self,
        sport: str,
        days_from: int | None = None,
        date_format: DateFormat = "iso",
        event_ids: Names | None = None,
    ) -> list[EventScore]:
        """See :meth:`OddsApi.scores`."""
        return await self._send(self._scores(sport, days_from, date_format, event_ids))

    async def events(
        self,
        sport: str,
        date_format: DateFormat = "iso",
        event_ids: Names | None = None,
        commence_time_from: datetime | None = None,
        commence_time_to: datetime | None = None,
    ) -> list[Event]:
        """See :meth:`OddsApi.events`."""
        query = self._events(sport, date_format, event_ids, commence_time_from, commence_time_to)
        return await self._send(query)

    async def event_odds(
        self,
        sport: str,
        event_id: str,
        regions: Names | None = None,
        markets: Names = ("h2h",),
        odds_format: OddsFormat = "decimal",
        date_format: DateFormat = "iso",
        bookmakers: Names | None = None,
    ) -> Event:
        """See :meth:`OddsApi.event_odds`."""
        query = self._event_odds(
            sport, event_id, regions, markets, odds_format, date_format, bookmakers
        )
        return await self._send(query)
