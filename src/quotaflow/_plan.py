from __future__ import annotations

import math
import weakref
from collections.abc import Iterable
from typing import Any

import attrs
import hishel
import httpx

from . import _policy
from ._cold import cold_lookup
from ._priority import Priority, current_priority
from ._profiles import DEFAULT_PROFILE
from ._state._books import PACED, account_name

__all__ = ["Plan", "PlannedRequest", "aplan", "plan"]

# The parts behind each client make_client built, for planning without sending.
_PARTS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


@attrs.frozen
class PlannedRequest:
    """One request of a plan.

    Attributes:
        url: the request's URL without secrets.
        profile: the API profile it belongs to.
        fresh: answered from the cache, without going upstream.
        cost: quota units it would spend (0 when fresh).
    """

    url: str
    profile: str
    fresh: bool
    cost: int


@attrs.frozen
class Plan:
    """What a batch of requests would do, decided without sending any.

    Attributes:
        requests: one entry per request, in order.
        upstream: how many would go upstream.
        cost: quota units they would spend in all.
        fits: whether every profile's quota can pay for its share at ``priority``,
            leaving that priority's reserve untouched.
        remaining: per quota account, the quota remaining as last known: keyed by the
            profile's name, followed by ``#`` and the short fingerprint of the
            credential when the requests carry one (each API key is its own quota).
        forecast_at_reset: per quota account, the units left at the reset if spending
            goes on at the rate of the period so far (None: no quota, or too early).

    With a ``pace``, ``fits`` also asks whether a NORMAL or LOW batch keeps to the
    plan.

    .. versionadded:: 0.1
    """

    requests: tuple[PlannedRequest, ...]
    priority: Priority
    upstream: int
    cost: int
    fits: bool
    remaining: dict[str, int | None]
    forecast_at_reset: dict[str, int | None] = attrs.field(factory=dict)


def _requests(
    client: httpx.Client | httpx.AsyncClient, requests: Iterable[Any]
) -> list[httpx.Request]:
    return [
        r if isinstance(r, httpx.Request) else client.build_request("GET", str(r)) for r in requests
    ]


def _entry(call: Any, request: httpx.Request, parts: Any, entries: list[hishel.Entry]) -> bool:
    """Whether the cache would answer ``request`` without asking upstream (RFC 9111)."""
    if request.method not in ("GET", "HEAD"):
        return False
    if call.hot and parts.hot.get(call.key, parts.clock.time()) is not None:
        return True
    # Kept in the cold store (under its key, or a snapshot window covering it): free.
    # Looked at without making it the most recently used.
    cold = parts.cold if call.hot and call.profile.immutable is not None else None
    if cold is not None and cold_lookup(cold, call, request, parts.clock.time(), touch=False):
        return True
    internal = hishel.Request(
        method=request.method,
        url=str(request.url),
        headers=hishel.Headers({k: [v] for k, v in request.headers.items()}),
    )
    state = hishel.IdleClient(options=hishel.CacheOptions(shared=False)).next(internal, entries)
    return isinstance(state, hishel.FromCache)


def _fits(quota: Any, profile: Any, cost: int, priority: Priority, now: float) -> bool:
    """Whether ``cost`` more units leave ``priority``'s reserve (and the even pace) whole."""
    total, available = quota.total, quota.remaining
    reserve = profile.reserves[priority]
    fits = _policy.admits(available=available, total=total, cost=cost, reserve=reserve)
    if profile.pace is not None and priority in PACED:
        fits = fits and _policy.paced(
            now=now,
            start=quota.start,
            end=quota.end,
            total=total,
            spent=total - available,
            cost=cost,
            reserve=reserve,
            pace=profile.pace,
        )
    return fits


def _rows(
    planned: list[tuple[Any, httpx.Request, bool]],
) -> tuple[list[PlannedRequest], dict[str, int], dict[str, Any]]:
    """One row per request; what each quota account would spend, and its profile."""
    from ._transports._guarded import guarded_cost

    rows = []
    spend: dict[str, int] = {}
    by_name = {}
    for call, request, fresh in planned:
        limited = (
            call.profile is not DEFAULT_PROFILE and request.method in call.profile.limited_methods
        )
        cost = 0 if fresh or not limited else guarded_cost(call.profile, request)
        rows.append(PlannedRequest(call.resource, call.profile.name, fresh, cost))
        # One quota per profile and credential (see _credentials).
        name = account_name(call.profile, call.account)
        spend[name] = spend.get(name, 0) + cost
        by_name[name] = (call.profile, call.account)
    return rows, spend, by_name


def _decide(parts: Any, planned: list[tuple[Any, httpx.Request, bool]], priority: Priority) -> Plan:
    rows, spend, by_name = _rows(planned)
    fits = True
    remaining: dict[str, int | None] = {}
    forecasts: dict[str, int | None] = {}
    ledger = parts.limiter.ledger
    now = parts.clock.time()
    for name, cost in spend.items():
        profile, account = by_name[name]
        remaining[name] = ledger.known_remaining(profile, account)
        if profile.quota is None:
            continue
        quota = ledger.snapshot(profile, account, now=now)
        assert quota is not None
        found = quota.forecast(now)
        forecasts[name] = math.floor(found) if found is not None else None
        if cost:
            fits = fits and _fits(quota, profile, cost, priority, now)
    return Plan(
        requests=tuple(rows),
        priority=priority,
        upstream=sum(1 for row in rows if not row.fresh),
        cost=sum(row.cost for row in rows),
        fits=fits,
        remaining=remaining,
        forecast_at_reset=forecasts,
    )


def plan(
    client: httpx.Client,
    requests: Iterable[str | httpx.URL | httpx.Request],
    *,
    priority: Priority | str | None = None,
) -> Plan:
    """Say which requests the cache would answer, what the others would cost, and
    whether the batch fits the remaining quota at ``priority``; send nothing.

    Args:
        client: a client built by :func:`quotaflow.make_client`.
        requests: URLs (GET) or :class:`httpx.Request` objects.
        priority: the priority they would be sent at (default: the current one).

    Raises:
        TypeError: ``client`` was not built by quotaflow.

    .. versionadded:: 0.1
    """
    parts = _PARTS.get(client)
    if parts is None:
        raise TypeError("plan() needs a client built by quotaflow.make_client()")
    level = Priority.parse(priority) if priority is not None else current_priority()
    planned = []
    for request in _requests(client, requests):
        call, inner = parts.router.route_redacted(request)
        fresh = _entry(call, inner, parts, parts.storage.get_entries(call.key))
        planned.append((call, inner, fresh))
    return _decide(parts, planned, level)


async def aplan(
    client: httpx.AsyncClient,
    requests: Iterable[str | httpx.URL | httpx.Request],
    *,
    priority: Priority | str | None = None,
) -> Plan:
    """:func:`plan` for a client built by :func:`quotaflow.make_async_client`.

    .. versionadded:: 0.1
    """
    parts = _PARTS.get(client)
    if parts is None:
        raise TypeError("aplan() needs a client built by quotaflow.make_async_client()")
    level = Priority.parse(priority) if priority is not None else current_priority()
    planned = []
    for request in _requests(client, requests):
        call, inner = parts.router.route_redacted(request)
        fresh = _entry(call, inner, parts, await parts.storage.get_entries(call.key))
        planned.append((call, inner, fresh))
    return _decide(parts, planned, level)
