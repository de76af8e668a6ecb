"""Events the stack emits, for plugins and the built-in status counters.

A subscriber is any callable taking one event. Plugins publish subscribers through the
same entry point as their profiles (a :class:`quotaflow.Plugin`), and a program can
pass its own with ``make_client(subscribers=[...])``. Subscribers run synchronously
on the request's thread, so they must be quick (batch any I/O); an exception in one
is logged and never reaches the request. A subscriber with a ``close()`` method is
closed with the client. No event object is built when nobody listens. A subscriber
with a ``profiles`` attribute (a collection of profile names) is handed only those
profiles' events: requests to other APIs then need not build any for it.

Every event has ``profile`` (its name) and ``at`` (epoch seconds); request events
also have ``resource``, the request's URL without secrets, ``priority`` (the request's,
see :func:`quotaflow.priority`) and ``waited`` (seconds it waited for the limiter).

.. versionadded:: 0.1

.. versionchanged:: 0.2
   Request events (:class:`Served` and its subclasses) carry ``priority`` and ``waited``,
   keyword fields with defaults (``"normal"``, ``0.0``); a subscriber's ``profiles``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import attrs

__all__ = [
    "CircuitChanged",
    "Event",
    "Fetched",
    "Hit",
    "QuotaChanged",
    "QuotaLow",
    "Refused",
    "Revalidated",
    "Served",
    "Stale",
    "Subscriber",
    "UpstreamFailed",
]

logger = logging.getLogger("quotaflow")


@attrs.frozen
class Event:
    profile: str
    at: float


@attrs.frozen
class Served(Event):
    """Base of the events that end a request (exactly one per request).

    .. versionchanged:: 0.2
       ``priority`` (the request's priority) and ``waited`` (seconds waited for the
       short-window limiter), keyword-only with defaults.
    """

    resource: str
    priority: str = attrs.field(default="normal", kw_only=True)
    waited: float = attrs.field(default=0.0, kw_only=True)


@attrs.frozen
class Fetched(Served):
    """A fresh answer came from upstream. ``content`` is its body (read for profiled APIs)."""

    status: int
    cost: int
    ttl: float | None
    content: bytes


@attrs.frozen
class Revalidated(Served):
    """The API confirmed a stored answer (304): nothing new."""

    cost: int


@attrs.frozen
class Hit(Served):
    """Answered from the cache; ``saved`` is what going upstream would have cost."""

    saved: int


@attrs.frozen
class Stale(Served):
    """Answered with a stored answer past its freshness, because of ``reason``."""

    reason: str
    age: float


@attrs.frozen
class Refused(Served):
    """Not answered: the quota, the rate limit or an open circuit said no (``reason``)."""

    reason: str
    priority: str


@attrs.frozen
class UpstreamFailed(Event):
    """One upstream attempt failed (network error, timeout, 5xx, 429, error body)."""

    resource: str
    detail: str


@attrs.frozen
class QuotaChanged(Event):
    """The quota as last known, after an answer or a refusal by the API.

    ``forecast``: units left at the reset if spending goes on at the period's rate so
    far (negative: it runs out before), None when too little of the period has passed
    or nothing was recorded.

    .. versionchanged:: 0.3 ``forecast``.
    """

    remaining: int | None
    forecast: float | None = None


@attrs.frozen
class QuotaLow(Event):
    """The quota fell to or below one of the profile's ``alerts``: ``remaining`` of
    ``total`` units left, ``threshold`` the alert level in units. Emitted once each time
    a level is crossed downward (by the one answer that crossed it), not on every
    request; ``account`` is the credential's short fingerprint, if any.

    .. versionadded:: 0.2
    """

    remaining: int
    threshold: int
    total: int
    account: str | None = None


@attrs.frozen
class CircuitChanged(Event):
    """The profile's circuit breaker opened or closed (``state``)."""

    state: str


Subscriber = Callable[[Event], None]


class Emitter:
    """Hands events to subscribers, shielding requests from their failures. Strictly private.

    A subscriber may count a hit without an event: ``served_hit(profile, at, resource,
    saved, priority, waited)``, or the older ``hit(profile, at, saved)``."""

    def __init__(self, subscribers: Iterable[Subscriber], *, builtin: int = 0) -> None:
        self.subscribers = tuple(subscribers)
        self.active = bool(self.subscribers)
        # The profiles each subscriber takes events of (None: all).
        self._wanted = [_wanted(s) for s in self.subscribers]
        self._filtered = any(wanted is not None for wanted in self._wanted)
        self._builtin = builtin
        # When every subscriber can count a hit directly, hits build no event object.
        fast = [_hit_counter(s) for s in self.subscribers]
        self._hit_counters = None if None in fast else fast

    def hit(
        self,
        profile: str,
        at: float,
        resource: str,
        saved: int,
        priority: str = "normal",
        waited: float = 0.0,
    ) -> None:
        if self._hit_counters is None:
            self(Hit(profile, at, resource, saved, priority=priority, waited=waited))
            return
        for count in self._hit_counters:
            try:
                count(profile, at, resource, saved, priority, waited)  # type: ignore[misc]
            except Exception:
                logger.exception("quotaflow: event subscriber %r failed", count)

    def listens_to(self, profile: str) -> bool:
        """Whether anyone besides the first ``builtin`` subscribers (quotaflow's own
        status counters) takes ``profile``'s events: only they see the requests that
        need no work."""
        wanted = self._wanted[self._builtin :]
        return any(names is None or profile in names for names in wanted)

    def __call__(self, event: Event) -> None:
        for subscriber, wanted in zip(self.subscribers, self._wanted, strict=True):
            if self._filtered and wanted is not None and event.profile not in wanted:
                continue
            try:
                subscriber(event)
            except Exception:
                logger.exception("quotaflow: event subscriber %r failed", subscriber)

    def close(self) -> None:
        for subscriber in self.subscribers:
            close = getattr(subscriber, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    logger.exception("quotaflow: closing subscriber %r failed", subscriber)


def _wanted(subscriber: Subscriber) -> frozenset[str] | None:
    names = getattr(subscriber, "profiles", None)
    if names is None or isinstance(names, str) or not isinstance(names, Iterable):
        return None  # not a collection of names: every event, as without one
    return frozenset(str(name) for name in names)


def _hit_counter(subscriber: Subscriber) -> Callable[..., None] | None:
    full = getattr(subscriber, "served_hit", None)
    if callable(full):
        return full  # type: ignore[no-any-return]
    short = getattr(subscriber, "hit", None)
    if not callable(short):
        return None

    def count(
        profile: str, at: float, resource: str, saved: int, priority: str, waited: float
    ) -> None:
        short(profile, at, saved)

    return count
