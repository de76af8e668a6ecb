"""What The Odds API v4 answers, as typed values: the documented shapes (see the plugin's
README.md) parsed strictly, the usage headers, and the API's errors as
:class:`OddsApiError`. Strictly private: :mod:`quotaflow_theoddsapi` re-exports them."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs
import httpx

from quotaflow import ResponseInfo

__all__ = [
    "Bookmaker",
    "Event",
    "EventScore",
    "Market",
    "OddsApiError",
    "Outcome",
    "Score",
    "Sport",
    "Usage",
]

T = TypeVar("T")


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
