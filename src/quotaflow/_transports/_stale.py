"""The stale choice: which stored answer the fallback may serve when upstream fails,
within the profile's max_stale for the request's priority. Strictly private."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs
import httpx
from hishel import Entry

from .. import _policy
from .._info import Cached, CacheStatus, Route, Spent, assemble
from .._raw import pairs_of
from ..exceptions import (
    CircuitOpen,
    QuotaExhausted,
    RateLimited,
)
from ._core import SAFE_METHODS


def stale_reason(exc: BaseException) -> str:
    if isinstance(exc, CircuitOpen):
        return "circuit_open"
    if isinstance(exc, QuotaExhausted):
        return "quota"
    if isinstance(exc, RateLimited):
        return "rate_limit"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    return "network"


@attrs.frozen
class StaleChoice:
    entry: Entry
    age: float
    ttl: float | None


def choose_stale(
    route: Route, request: httpx.Request, entries: Iterable[Entry], now: float
) -> StaleChoice | None:
    """The newest stored answer still within the profile's max_stale for the request's
    priority, if any."""
    limit = route.profile.stale_limit(route.priority)
    best: StaleChoice | None = None
    best_at = float("-inf")
    for entry in entries:
        if entry.request.method != request.method:
            continue
        received = _policy.timestamp(entry.response.headers.get("date"))
        if received is None or received <= best_at:
            continue
        ttl = _policy.max_age(httpx.Headers(_pairs(entry)))
        age = max(0.0, now - received)
        if _policy.staleness_allows(age=age, ttl=ttl, max_stale=limit):
            best, best_at = StaleChoice(entry, age, ttl), received
    return best


def stale_eligible(route: Route, request: httpx.Request) -> bool:
    return request.method in SAFE_METHODS and route.profile.stale_limit(route.priority) > 0


def _pairs(entry: Entry) -> list[tuple[bytes, bytes]]:
    # Bytes, as sent (``_raw``): httpx encodes str values as ASCII and raises on a
    # stored non-ASCII header (issue 13).
    return pairs_of(entry.response.headers)


def stale_response(
    route: Route,
    request: httpx.Request,
    choice: StaleChoice,
    stream: Any,
    reason: str,
    spent: Spent | None,
    remaining: int | None,
) -> httpx.Response:
    """The stored answer, streamed from storage as it is read, marked stale."""
    headers = httpx.Headers(_pairs(choice.entry))
    headers["age"] = str(int(choice.age))
    response = httpx.Response(
        choice.entry.response.status_code, headers=headers, stream=stream, request=request
    )
    why = f"stale ({reason}): {int(choice.age)} s old, within max_stale"
    cached = Cached(CacheStatus.STALE, choice.ttl, True, "storage", why)
    info = assemble(route, cached, spent, remaining)
    response.extensions["quotaflow"] = attrs.evolve(info, stale_reason=reason, age=choice.age)
    return response
