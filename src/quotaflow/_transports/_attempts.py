"""The rate-limit layer's pure rules for one request's attempts upstream: what an
answer cost, how long a spent window holds the profile, whether and when to try again;
and the layer's own tally of what the attempts took. Strictly private."""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import httpx

from .. import _policy
from .._info import Route, Spent
from .._profiles import ApiProfile, QuotaReading, Verdict, WindowReading
from ..exceptions import QuotaflowError

# A reset from here on is a moment (epoch seconds), even one already past: 10**9 s
# is September 2001, and no window is that long.
_EPOCH = 1e9


def window_hold(profile: ApiProfile, reading: WindowReading, now: float) -> float:
    """Seconds to hold off because the API says its short window is spent (0: none).

    The reset the API gives (seconds, or epoch seconds; a moment past means the window
    has already started again), else the ``per`` of the profile's shortest rate of the
    window's size (of any size if none matches): the longest the window can take.
    """
    remaining = reading.remaining
    if isinstance(remaining, bool) or not isinstance(remaining, int) or remaining > 0:
        return 0.0
    reset = reading.reset
    if isinstance(reset, bool) or not isinstance(reset, int | float) or not math.isfinite(reset):
        reset = None
    if reset is not None and reset >= 0:
        delay = reset - now if reset >= _EPOCH else reset
    else:
        pers = [rate.per for rate in profile.rates if rate.limit == reading.limit]
        delay = min(pers or [rate.per for rate in profile.rates], default=0.0)
    return min(max(delay, 0.0), _policy.MAX_RETRY_AFTER)


# An answer the API refused for its credential (a bad, revoked or unauthorised key).
UNAUTHORISED = frozenset({401, 403})


def charged(status: int, reading: QuotaReading, estimate: int, *, exhausted: bool) -> int:
    """What an answer cost: what the API says this call cost (``last``: 0 for a free
    one), else nothing for a 401 or 403 that is not the quota running out (an API
    charges no credit for a key it refuses: The Odds API, API-Sports), else the
    estimate the reservation was made with (issue 14: an exact ledger)."""
    if reading.last is not None and reading.last >= 0:
        return reading.last
    if status in UNAUTHORISED and not exhausted:
        return 0
    return estimate


@attrs.define
class Tally:
    """What reaching upstream has taken so far, for one request: the rate-limit
    layer's own scratch (never shared), handed up as a frozen ``Spent``. Strictly
    private."""

    cost: int = 0
    remaining: int | None = None
    waited: float = 0.0
    verdict: Verdict = "ok"
    buffered: bool = False
    forecast: float | None = None
    # The route's lease was taken (``Limiter.before``), and landed with the settle.
    leased: bool = False
    landed: bool = False

    def spent(self) -> Spent:
        return Spent(
            self.cost,
            self.remaining,
            self.waited,
            self.verdict,
            self.buffered,
            self.forecast,
            self.landed,
        )


RETRY_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def retries_for(profile: ApiProfile, request: httpx.Request, client: int | bool | None) -> int:
    """How many times this request may be retried: the request's ``retries``
    extension, else the client's ``retries``, else the profile's."""
    chosen = request.extensions.get("retries")
    if chosen is None:
        chosen = client
    if chosen is None or chosen is True:
        return profile.retries
    return 0 if chosen is False else int(chosen)


def retry_delay(
    route: Route,
    request: httpx.Request,
    attempt: int,
    client_retries: int | bool | None,
    waited: float,
    now: float,
    draw: Callable[[], float],
    response: httpx.Response | None,
    error: BaseException | None,
) -> float | None:
    """Seconds to wait before trying again, or None to stop here.

    Idempotent requests are retried after network errors, timeouts, 502, 503, 504
    and 429, at most ``retries_for`` times, with exponential backoff and full jitter
    (``draw``: the clock's random, asked only then); a ``Retry-After`` wins. The waits
    count against the priority's max wait, so a LOW request never retries.
    """
    profile = route.profile
    delay: float | None = None
    if response is not None:
        if response.status_code not in RETRY_STATUSES:
            return None
        delay = _policy.retry_after(response.headers.get("retry-after"), now)
    elif isinstance(error, QuotaflowError) or not isinstance(error, httpx.TransportError):
        return None
    if request.method not in IDEMPOTENT:
        return None
    if attempt >= retries_for(profile, request, client_retries):
        return None
    if delay is None:
        delay = _policy.backoff(attempt, profile.backoff, profile.backoff_max, draw())
    if waited + delay > profile.max_wait[route.priority] + 1e-9:
        return None
    return delay
