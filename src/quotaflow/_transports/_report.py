"""Reporting: the DEBUG line and the one event that ends each request. Strictly private."""

from __future__ import annotations

import logging

import httpx

from .. import events
from .._info import CacheStatus, Call, ResponseInfo
from .._profiles import DEFAULT_PROFILE
from ..events import Emitter
from ..exceptions import (
    CircuitOpen,
    QuotaExhausted,
    RateLimited,
)
from ._guarded import guarded_cost
from ._stale import stale_reason

logger = logging.getLogger("quotaflow")


def log_answer(request: httpx.Request, call: Call, info: ResponseInfo) -> None:
    """One DEBUG line per request: what the cache did and why (no secrets: the
    resource is the URL without them)."""
    logger.debug(
        "quotaflow: %s %s -> %s%s, cost %d (%s): %s",
        request.method,
        call.resource,
        info.cache,
        f" from {info.tier}" if info.tier else "",
        info.cost,
        info.profile,
        info.reason or ("stored" if info.stored else "not stored"),
    )


def report(
    emit: Emitter,
    call: Call,
    request: httpx.Request,
    response: httpx.Response | None,
    error: BaseException | None,
    now: float,
    costs: dict[str, int],
) -> None:
    """The one event that ends a request, for subscribers. ``costs`` remembers what
    each resource would cost, so a hit does not run the profile's cost function again."""
    profile, resource = call.profile.name, call.resource
    if error is None and call.cache is CacheStatus.HIT:  # the common case, first
        saved = costs.get(resource)
        if saved is None:
            saved = (
                guarded_cost(call.profile, request) if call.profile is not DEFAULT_PROFILE else 0
            )
            if len(costs) > 4096:
                costs.clear()
            costs[resource] = saved
        emit.hit(profile, now, resource, saved, call.priority.value, call.waited)
        return
    priority, waited = call.priority.value, call.waited
    if error is not None:
        if isinstance(error, QuotaExhausted | RateLimited | CircuitOpen):
            emit(
                events.Refused(profile, now, resource, stale_reason(error), priority, waited=waited)
            )
        return
    assert response is not None
    info = response.extensions.get("quotaflow")
    if call.cache is CacheStatus.STALE and info is not None:
        emit(
            events.Stale(
                profile,
                now,
                resource,
                info.stale_reason or "",
                info.age or 0.0,
                priority=priority,
                waited=waited,
            )
        )
    elif call.cache is CacheStatus.REVALIDATED:
        emit(
            events.Revalidated(profile, now, resource, call.cost, priority=priority, waited=waited)
        )
    elif call.upstream and 200 <= response.status_code < 300 and call.verdict == "ok":
        try:
            content = response.content
        except httpx.ResponseNotRead:
            content = b""
        emit(
            events.Fetched(
                profile,
                now,
                resource,
                response.status_code,
                call.cost,
                call.ttl,
                content,
                priority=priority,
                waited=waited,
            )
        )
