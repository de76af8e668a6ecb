"""Pauses the API asks for in its answers, shared by every process on the profile's
state (``ShortWindow.pause``): the rate-limit layer's, out of ``_limiter``. Strictly
private."""

from __future__ import annotations

import logging

import httpx

from .. import _policy
from .._info import Route
from .._state._short import ShortWindow
from ..exceptions import StateUnavailable
from ._attempts import window_hold
from ._guarded import guarded_window

logger = logging.getLogger("quotaflow")


def hold(window: ShortWindow | None, route: Route, response: httpx.Response, now: float) -> None:
    """Pause the profile (``window``: its short window; None: nothing to pause) where
    the answer says to.

    A 429 with Retry-After: the API asks everyone on the key to hold off, not just this
    request. A short window the API says is spent (``read_window``): requests on the
    same key we don't know of (another client, a machine not sharing our state) used it
    up, and our own window would let the next request collect a 429; hold off until it
    resets. Every process on the profile's state waits until then.
    """
    if response.status_code == 429:
        delay = _policy.retry_after(response.headers.get("retry-after"), now)
        if delay is not None:
            _pause(window, route, now + delay, now)
    if route.profile.read_window is not None:
        reading = guarded_window(route.profile, response)
        if reading is None:
            return
        delay = window_hold(route.profile, reading, now)
        if delay > 0:
            _pause(window, route, now + delay, now)


def _pause(window: ShortWindow | None, route: Route, until: float, now: float) -> None:
    if window is None:
        return
    try:
        window.pause(until, now)
    except StateUnavailable:
        # Paused here all the same; the other processes learn from their own answers.
        logger.warning("profile %s: could not share a pause", route.profile.name)
