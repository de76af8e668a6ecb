"""Exceptions raised by quotaflow.

Every error derives from :class:`QuotaflowError`, which derives from
:class:`httpx.TransportError`, so code that already catches ``httpx.HTTPError``
or ``httpx.TransportError`` keeps working::

    httpx.HTTPError
     └─ httpx.TransportError
         └─ QuotaflowError
             ├─ RateLimited      a short-window wait would exceed the request's max wait
             ├─ QuotaExhausted   the request would spend into its priority's reserve,
             │                   or the API said the quota is gone
             ├─ CircuitOpen      the API failed too often in a row: not asked until a cool-down
             ├─ ConfigError      bad settings, refused when the client or profile is built
             └─ StateUnavailable shared state (Redis) unreachable and the client fails closed

.. versionadded:: 0.1
"""

from __future__ import annotations

import httpx

__all__ = [
    "CircuitOpen",
    "ConfigError",
    "QuotaExhausted",
    "QuotaflowError",
    "RateLimited",
    "StateUnavailable",
]


class QuotaflowError(httpx.TransportError):
    """Root of every quotaflow error."""

    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        super().__init__(message, request=request)


class RateLimited(QuotaflowError):
    """Waiting for the short-window limit would exceed the request's max wait.

    Attributes:
        profile: name of the API profile whose limit was hit.
        retry_after: seconds until the request would have been admitted.
    """

    def __init__(
        self,
        message: str,
        *,
        profile: str,
        retry_after: float,
        request: httpx.Request | None = None,
    ) -> None:
        super().__init__(message, request=request)
        self.profile = profile
        self.retry_after = retry_after


class QuotaExhausted(QuotaflowError):
    """The long-window quota refuses the request.

    Either its cost would take the remaining quota below the reserve its priority
    must leave untouched, or the API itself answered that the quota is used up.

    Attributes:
        profile: name of the API profile.
        remaining: quota units remaining as last known (``None`` if unknown).
        cost: quota units the request would have spent.
    """

    def __init__(
        self,
        message: str,
        *,
        profile: str,
        remaining: int | None,
        cost: int,
        request: httpx.Request | None = None,
    ) -> None:
        super().__init__(message, request=request)
        self.profile = profile
        self.remaining = remaining
        self.cost = cost


class ConfigError(QuotaflowError, ValueError):
    """A setting is invalid. The message names the field."""


class StateUnavailable(QuotaflowError):
    """The shared state store (Redis) cannot be reached and the client fails closed.

    With ``redis_fail="open"`` quotaflow keeps going on local state instead.
    """


class CircuitOpen(QuotaflowError):
    """The profile's circuit breaker is open: upstream failed too often in a row.

    Requests are not sent until the cool-down has passed; then one probe request
    is, and its success closes the circuit.

    Attributes:
        profile: name of the API profile.
        retry_after: seconds until a probe will be let through.
    """

    def __init__(
        self,
        message: str,
        *,
        profile: str,
        retry_after: float,
        request: httpx.Request | None = None,
    ) -> None:
        super().__init__(message, request=request)
        self.profile = profile
        self.retry_after = retry_after
