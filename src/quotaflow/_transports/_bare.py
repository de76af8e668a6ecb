"""Requests that need no work: nothing to cache, limit or count. Strictly private.

Two kinds, to a URL no profile matches, go from the outermost layer straight to the
network transport once nothing is known to be stored under their URL (``_known.py``): an
unsafe request (POST, PUT, DELETE...), which all the stack would do for is invalidate
what is stored (RFC 9111 §4.4), and a GET whose last answer was never reused (no
freshness, no validator, no fallback use: ``SingleFlight.unstored``), which the stack
would neither look up nor store. No redacted copy, no storage touch, no event (unless
the client has subscribers of its own, which see every request), no DEBUG line to build
unless DEBUG is on. The answer comes as upstream sent it, with the ``ResponseInfo``, the
``Cache-Status`` member and the ``Date`` the whole stack would give it (but for an
answer without a ``Date``: the stack dates it for storage's sake, and this one is never
stored); a GET's answer
that turns out reusable after all sends the URL's next request through the stack, which
stores it.
"""

from __future__ import annotations

import logging

import httpx

from .. import _policy
from .._cache_status import HEADER, NAME
from .._flight import SingleFlight
from .._httpx_fast import add_header, header_names
from .._info import CacheStatus, ResponseInfo
from .._known import EmptyKeys
from .._priority import Priority, current_priority
from .._profiles import DEFAULT_PROFILE
from ..events import Emitter
from ._core import (
    CLOCK_SKEW,
    NEXT_STORED,
    SAFE_METHODS,
    Policy,
    header_reason,
    reusable,
    worth_storing,
)
from ._route import Router, _UrlRoute

logger = logging.getLogger("quotaflow")

# The answer's headers that tell whether and how long it may be reused (RFC 9111 §4.2).
_JUDGED = frozenset({b"cache-control", b"expires", b"etag", b"last-modified", b"vary"})
NO_FRESHNESS = header_reason(httpx.Response(200))
# Whether an answer saying nothing of its freshness is never reused.
_PLAIN_UNREUSED = not reusable(DEFAULT_PROFILE, httpx.Headers(), 0.0)

BARE = "straight to the network: an unsafe request to a URL no profile matches, nothing stored"


class Bare:
    """Tells the requests that need no work. Strictly private.

    ``policy`` and ``flights`` (the caching layer's) let GETs go around the stack too:
    None when the client does not cache."""

    def __init__(
        self,
        router: Router,
        known: EmptyKeys,
        emit: Emitter,
        policy: Policy | None = None,
        flights: SingleFlight | None = None,
    ) -> None:
        self._router = router
        self._known = known
        # Whether a subscriber of the client's own takes the default profile's events.
        self._listened = emit.listens_to(DEFAULT_PROFILE.name)
        self._infos: dict[Priority, ResponseInfo] = {}
        self._answers: dict[tuple[Priority, float | None, str], ResponseInfo] = {}
        # A default freshness makes answers reused that say nothing of their own: only
        # the whole stack judges those.
        self._gets = (
            (policy, flights)
            if policy is not None
            and flights is not None
            and policy.rules.default_ttl is None
            and DEFAULT_PROFILE.default_ttl is None
            else None
        )

    def _plain(self, request: httpx.Request, found: _UrlRoute, bypass: bool) -> bool:
        """Whether ``request`` to ``found`` may skip the stack: nothing stored under its
        key, no one listening, no credential header (it would be another key) and, for
        a GET (``bypass``), no cache directive of its own."""
        if found.profile is not DEFAULT_PROFILE or found.key not in self._known or self._listened:
            return False
        names = header_names(request.headers)
        secrets = self._router.secrets(DEFAULT_PROFILE)
        if not names.isdisjoint(secrets.headers) or (
            bypass and not names.isdisjoint(secrets.bypass)
        ):
            return False
        return not logger.isEnabledFor(logging.DEBUG)  # the stack logs every request's line

    def info(self, request: httpx.Request) -> ResponseInfo | None:
        """The ResponseInfo of an unsafe request that needs no work, else None."""
        if request.method in SAFE_METHODS:
            return None
        if not self._plain(request, self._router.url_route(request.url), False):
            return None
        priority = _priority(request)
        info = self._infos.get(priority)
        if info is None:
            info = self._infos[priority] = ResponseInfo(
                DEFAULT_PROFILE.name, priority, CacheStatus.MISS, reason=BARE
            )
        return info

    def get(self, request: httpx.Request) -> _UrlRoute | None:
        """What the URL of a GET that needs no work means, else None."""
        gets = self._gets
        if gets is None or request.method != "GET":
            return None
        found = self._router.url_route(request.url)
        policy, flights = gets
        if not flights.unstored(found.key) or not self._plain(request, found, True):
            return None
        return found if policy.rules.match(request.url) is None else None

    def answered(self, found: _UrlRoute, request: httpx.Request, response: httpx.Response) -> None:
        """Give the answer to a GET that needed no work what the whole stack would."""
        if self._gets is None:
            return
        policy, flights = self._gets
        now = policy.clock.time()
        headers = response.headers
        names = header_names(headers)
        if b"date" in names:
            date = _policy.timestamp(headers.get("date"))
            if date is None or date > now + CLOCK_SKEW:
                headers["date"] = _policy.http_date(now)  # as Policy.judge does
        if _PLAIN_UNREUSED and names.isdisjoint(_JUDGED):  # the usual answer
            worth, reason, ttl = False, NO_FRESHNESS, None
        else:
            worth = worth_storing(DEFAULT_PROFILE, headers, now)
            reason, ttl = header_reason(response), _policy.max_age(headers)
        if worth:
            flights.stored(found.key, True)  # the next request goes through the stack
            reason = NEXT_STORED
        memo = (_priority(request), ttl, reason)
        info = self._answers.get(memo)
        if info is None:
            if len(self._answers) >= 64:
                self._answers.clear()
            info = self._answers[memo] = ResponseInfo(
                DEFAULT_PROFILE.name, memo[0], CacheStatus.MISS, ttl=ttl, reason=reason
            )
        response.extensions["quotaflow"] = info
        # An answer that replaces what is stored (none was) found the URI empty.
        status = response.status_code
        forward = "uri-miss" if 200 <= status < 300 and b"vary" not in names else "miss"
        _stamp(response, forward, b"cache-status" in names)


def _priority(request: httpx.Request) -> Priority:
    chosen = request.extensions.get("priority")
    return Priority.parse(chosen) if chosen is not None else current_priority()


def stamp_bare(response: httpx.Response) -> httpx.Response:
    """quotaflow's ``Cache-Status`` member (RFC 9211), as the whole stack would give an
    unsafe request: forwarded for its method."""
    return _stamp(response, "method", b"cache-status" in header_names(response.headers))


def _stamp(response: httpx.Response, forward: str, prior: bool) -> httpx.Response:
    """Append quotaflow's member to ``Cache-Status`` (``prior``: it may be there)."""
    ours = f"{NAME}; fwd={forward}; fwd-status={response.status_code}"
    headers = response.headers
    if not prior:
        add_header(headers, b"cache-status", ours)
        return response
    found = headers.get(HEADER)
    headers[HEADER] = ours if not found else f"{found}, {ours}"
    return response
