"""Requests that need no work: nothing to cache, limit or count. Strictly private.

An unsafe request (POST, PUT, DELETE...) to a URL no profile matches is neither cached
nor limited nor charged; all the stack would do is invalidate what is stored under its
URL (RFC 9111 §4.4), and once that is known to be nothing (``_known.py``), the request
goes from the outermost layer straight to the network transport: no redacted copy, no
storage touch, no event (unless the client has subscribers of its own, which see every
request), no DEBUG line to build unless DEBUG is on.
"""

from __future__ import annotations

import logging

import httpx

from .._cache_status import HEADER, NAME
from .._httpx_fast import header_names
from .._info import CacheStatus, ResponseInfo
from .._known import EmptyKeys
from .._priority import Priority, current_priority
from .._profiles import DEFAULT_PROFILE
from ..events import Emitter
from ._core import SAFE_METHODS
from ._route import Router

logger = logging.getLogger("quotaflow")

BARE = "straight to the network: an unsafe request to a URL no profile matches, nothing stored"


class Bare:
    """Tells the requests that need no work. Strictly private."""

    def __init__(self, router: Router, known: EmptyKeys, emit: Emitter) -> None:
        self._router = router
        self._known = known
        self._emit = emit
        self._infos: dict[Priority, ResponseInfo] = {}

    def info(self, request: httpx.Request) -> ResponseInfo | None:
        """The request's ResponseInfo if it needs no work, else None."""
        if request.method in SAFE_METHODS or self._emit.listening:
            return None
        route = self._router.url_route(request.url)  # remembered per URL
        if route.profile is not DEFAULT_PROFILE or route.key not in self._known:
            return None
        # A credential header partitions the stored answers: the key is another one.
        if not header_names(request.headers).isdisjoint(
            self._router.secrets(DEFAULT_PROFILE).headers
        ):
            return None
        if logger.isEnabledFor(logging.DEBUG):
            return None  # the stack logs every request's line
        chosen = request.extensions.get("priority")
        priority = Priority.parse(chosen) if chosen is not None else current_priority()
        info = self._infos.get(priority)
        if info is None:
            info = self._infos[priority] = ResponseInfo(
                DEFAULT_PROFILE.name, priority, CacheStatus.MISS, reason=BARE
            )
        return info


def stamp_bare(response: httpx.Response) -> httpx.Response:
    """quotaflow's ``Cache-Status`` member (RFC 9211), as the whole stack would give an
    unsafe request: forwarded for its method."""
    ours = f"{NAME}; fwd=method; fwd-status={response.status_code}"
    headers = response.headers
    prior = headers.get(HEADER)
    headers[HEADER] = ours if not prior else f"{prior}, {ours}"
    return response
