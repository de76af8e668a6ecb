"""Exceptions raised by quotaflow.

Every error derives from :class:`QuotaflowError`, a plain :class:`Exception`.
What a *request* can raise (a refusal) derives from :class:`RequestRefused`, which
is also an :class:`httpx.TransportError`, so code that already catches
``httpx.HTTPError`` or ``httpx.TransportError`` around its requests keeps working.
:class:`ConfigError` is raised when a client or profile is built; it is also a
:class:`ValueError` and is *not* a transport error::

    Exception
     └─ QuotaflowError
         ├─ ConfigError          (also ValueError) bad settings, refused when the
         │                       client or profile is built; the message names the field
         └─ RequestRefused       (also httpx.TransportError) a request was not sent
             ├─ RateLimited      a short-window wait would exceed the request's max wait
             ├─ QuotaExhausted   the request would spend into its priority's reserve,
             │                   or the API said the quota is gone
             ├─ CircuitOpen      the API failed too often in a row: not asked until a cool-down
             └─ StateUnavailable shared state (Redis) unreachable and the client fails closed

.. versionadded:: 0.1
.. versionchanged:: 0.2
   ``QuotaflowError`` is a plain ``Exception``; only the refusals are transport errors,
   and ``ConfigError`` is a ``ValueError``.
"""

from __future__ import annotations

import httpx

__all__ = [
    "CircuitOpen",
    "ConfigError",
    "QuotaExhausted",
    "QuotaflowError",
    "RateLimited",
    "RequestRefused",
    "StateUnavailable",
]


class QuotaflowError(Exception):
    """Root of every quotaflow error."""


class ConfigError(QuotaflowError, ValueError):
    """A setting is invalid. The message names the field.

    Raised when a client, its settings or a profile is built, never by a request.
    """


class RequestRefused(QuotaflowError, httpx.TransportError):
    """quotaflow refused to send a request (the root of what a request can raise).

    Also an :class:`httpx.TransportError`, so ``except httpx.TransportError`` around
    a request catches it, and ``exc.request`` is the refused request when known.

    .. versionadded:: 0.2
    """

    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        httpx.TransportError.__init__(self, message, request=request)


class RateLimited(RequestRefused):
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


class QuotaExhausted(RequestRefused):
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


class StateUnavailable(RequestRefused):
    """The shared state store (Redis) cannot be reached and the client fails closed.

    With ``redis_fail="open"`` quotaflow keeps going on local state instead.
    """


class CircuitOpen(RequestRefused):
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
