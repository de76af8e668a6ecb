"""Reporting: the DEBUG line and the one event that ends each request. Strictly private."""

from __future__ import annotations

import logging

import httpx

from .. import events
from .._alert_command import AlertCommand
from .._info import CacheStatus, ResponseInfo, Route, cached_of, spent_of
from .._profiles import DEFAULT_PROFILE
from .._state._books import Settled
from ..events import Emitter
from ..exceptions import (
    CircuitOpen,
    QuotaExhausted,
    RateLimited,
)
from ._guarded import guarded_cost
from ._stale import stale_reason

logger = logging.getLogger("quotaflow")


def log_answer(request: httpx.Request, route: Route, info: ResponseInfo) -> None:
    """One DEBUG line per request: what the cache did and why (no secrets: the
    resource is the URL without them)."""
    logger.debug(
        "quotaflow: %s %s -> %s%s, cost %d (%s): %s",
        request.method,
        route.resource,
        info.cache,
        f" from {info.tier}" if info.tier else "",
        info.cost,
        info.profile,
        info.reason or ("stored" if info.stored else "not stored"),
    )


def report(
    emit: Emitter,
    route: Route,
    request: httpx.Request,
    response: httpx.Response | None,
    error: BaseException | None,
    now: float,
    costs: dict[str, int],
) -> None:
    """The one event that ends a request, for subscribers. ``costs`` remembers what
    each resource would cost, so a hit does not run the profile's cost function again."""
    cache = cached_of(response).cache if response is not None else CacheStatus.MISS
    if error is None and cache is CacheStatus.HIT:  # the common case, first
        _hit(emit, route, request, now, costs)
    elif error is not None:
        _refused(emit, route, error, now)
    elif response is not None:
        _answered(emit, route, response, now)


def _hit(
    emit: Emitter, route: Route, request: httpx.Request, now: float, costs: dict[str, int]
) -> None:
    resource = route.resource
    saved = costs.get(resource)
    if saved is None:
        saved = guarded_cost(route.profile, request) if route.profile is not DEFAULT_PROFILE else 0
        if len(costs) > 4096:
            costs.clear()
        costs[resource] = saved
    emit.hit(route.profile.name, now, resource, saved, route.priority)  # a StrEnum: a str


def _refused(emit: Emitter, route: Route, error: BaseException, now: float) -> None:
    if isinstance(error, QuotaExhausted | RateLimited | CircuitOpen):
        spent = spent_of(error)
        waited = spent.waited if spent is not None else 0.0
        reason = stale_reason(error)
        emit(
            events.Refused(
                route.profile.name, now, route.resource, reason, route.priority.value, waited=waited
            )
        )


def _answered(emit: Emitter, route: Route, response: httpx.Response, now: float) -> None:
    info = response.extensions.get("quotaflow")
    if not isinstance(info, ResponseInfo):
        return
    profile, resource, priority = route.profile.name, route.resource, route.priority.value
    spent, waited = spent_of(response), info.waited
    if info.cache is CacheStatus.STALE:
        reason, age = info.stale_reason or "", info.age or 0.0
        emit(events.Stale(profile, now, resource, reason, age, priority=priority, waited=waited))
    elif info.cache is CacheStatus.REVALIDATED:
        emit(
            events.Revalidated(profile, now, resource, info.cost, priority=priority, waited=waited)
        )
    elif spent is not None and 200 <= response.status_code < 300 and spent.verdict == "ok":
        try:
            content = response.content
        except httpx.ResponseNotRead:
            content = b""
        status, cost, ttl = response.status_code, info.cost, info.ttl
        emit(
            events.Fetched(
                profile, now, resource, status, cost, ttl, content, priority=priority, waited=waited
            )
        )


def quota_alert(
    emit: Emitter,
    command: AlertCommand | None,
    route: Route,
    settled: Settled,
    now: float,
) -> None:
    """The quota fell to an alert level (the ledger has logged it): run the user's
    command, tell subscribers."""
    if not settled.crossed:
        return
    if command is not None:
        for level in settled.crossed:
            command.run(route.profile.name, settled.remaining or 0, level, settled.total or 0)
    if not emit.active:
        return
    for level in settled.crossed:
        emit(
            events.QuotaLow(
                route.profile.name,
                now,
                settled.remaining if settled.remaining is not None else 0,
                level,
                settled.total if settled.total is not None else 0,
                route.account,
            )
        )
