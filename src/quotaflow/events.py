"""Events the stack emits, for plugins and the built-in status counters.

A subscriber is any callable taking one event. Plugins publish subscribers through the
same entry point as their profiles (a :class:`quotaflow.Plugin`), and a program can
pass its own with ``make_client(subscribers=[...])``. Subscribers run synchronously
on the request's thread, so they must be quick (batch any I/O); an exception in one
is logged and never reaches the request. A subscriber with a ``close()`` method is
closed with the client. No event object is built when nobody listens.

Every event has ``profile`` (its name) and ``at`` (epoch seconds); request events
also have ``resource``, the request's URL without secrets.

.. versionadded:: 0.1
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
    """Base of the events that end a request (exactly one per request)."""

    resource: str


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
    """The quota as last known, after an answer or a refusal by the API."""

    remaining: int | None


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
    """Hands events to subscribers, shielding requests from their failures. Strictly private."""

    def __init__(self, subscribers: Iterable[Subscriber], *, builtin: int = 0) -> None:
        self.subscribers = tuple(subscribers)
        self.active = bool(self.subscribers)
        # Whether anyone besides the first ``builtin`` subscribers (quotaflow's own
        # status counters) listens: only they see requests that need no work.
        self.listening = len(self.subscribers) > builtin
        # When every subscriber can count a hit directly, hits build no event object.
        self._hit_counters = (
            [getattr(s, "hit") for s in self.subscribers]  # noqa: B009
            if all(callable(getattr(s, "hit", None)) for s in self.subscribers)
            else None
        )

    def hit(self, profile: str, at: float, resource: str, saved: int) -> None:
        if self._hit_counters is None:
            self(Hit(profile, at, resource, saved))
            return
        for count in self._hit_counters:
            try:
                count(profile, at, saved)
            except Exception:
                logger.exception("quotaflow: event subscriber %r failed", count)

    def __call__(self, event: Event) -> None:
        for subscriber in self.subscribers:
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
