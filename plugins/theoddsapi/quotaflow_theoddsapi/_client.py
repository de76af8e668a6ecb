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
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeAlias, TypeVar

import attrs
import httpx

from ._models import (
    Event,
    EventScore,
    OddsApiError,
    Sport,
    Usage,
    _error,
    _event,
    _event_score,
    _list_of,
    _single_event,
    _sport,
    _usage,
)

__all__ = ["AsyncOddsApi", "OddsApi"]

T = TypeVar("T")
OddsFormat: TypeAlias = Literal["decimal", "american"]
DateFormat: TypeAlias = Literal["iso", "unix"]
Names: TypeAlias = str | Sequence[str]

DEFAULT_BASE_URL = "https://api.the-odds-api.com"


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
