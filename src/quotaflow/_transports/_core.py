"""Decisions shared by the sync and async twins of every layer. Strictly private."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import httpx
from hishel import Entry

from .. import _policy, events
from .._backend import Backend
from .._breaker import Breaker
from .._clock import Clock
from .._info import CacheStatus, Call, ResponseInfo
from .._ledger import Settled, Ticket
from .._profiles import (
    DEFAULT_PROFILE,
    ApiProfile,
    QuotaReading,
    Verdict,
    WindowReading,
)
from .._retention import is_event_stream
from .._rules import HEURISTIC_STATUSES, CacheRules, explicit_freshness
from .._state import ShortWindow
from ..events import Emitter
from ..exceptions import (
    CircuitOpen,
    QuotaExhausted,
    QuotaflowError,
    RateLimited,
    StateUnavailable,
)

logger = logging.getLogger("quotaflow")

SAFE_METHODS = frozenset({"GET", "HEAD"})


class UpstreamFailed(Exception):
    """A profiled API answered with a failure (5xx, 429, an error body). Strictly private.

    Raised below hishel so that the failure is neither stored nor allowed to
    invalidate the stored answer, and caught by the fallback layer above it.
    """

    def __init__(self, response: httpx.Response, reason: str) -> None:
        super().__init__(reason)
        self.response = response
        self.reason = reason


def _guarded_cost(profile: ApiProfile, request: httpx.Request) -> int:
    try:
        cost = profile.cost(request)
    except Exception:
        logger.warning("profile %s: cost() failed, counting 1 unit", profile.name, exc_info=True)
        return 1
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
        logger.warning("profile %s: cost() returned %r, counting 1 unit", profile.name, cost)
        return 1
    return cost


# An origin's Date further than this from our clock is its clock, not the network.
CLOCK_SKEW = 5.0

# Bodies larger than this are streamed on unread, even for profiles whose rules read
# them (``reads_body``), and not stored (``make_client(max_body=...)``).
MAX_BODY = 8 * 2**20


def _unread(profile: ApiProfile, rule: str) -> None:
    logger.warning(
        "profile %s: %s reads the body, which is only read for profiles with"
        " reads_body=True (and bodies within max_body); taking the headers alone",
        profile.name,
        rule,
    )


def _guarded_reading(profile: ApiProfile, response: httpx.Response) -> QuotaReading:
    try:
        reading = profile.read_quota(response)
    except httpx.ResponseNotRead:
        _unread(profile, "read_quota")
        return QuotaReading()
    except Exception:
        logger.warning("profile %s: read_quota() failed, ignoring it", profile.name, exc_info=True)
        return QuotaReading()
    return reading if isinstance(reading, QuotaReading) else QuotaReading()


def _guarded_window(profile: ApiProfile, response: httpx.Response) -> WindowReading | None:
    if profile.read_window is None:
        return None
    try:
        reading = profile.read_window(response)
    except Exception:
        logger.warning("profile %s: read_window() failed, ignoring it", profile.name, exc_info=True)
        return None
    return reading if isinstance(reading, WindowReading) else None


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


def _guarded_verdict(profile: ApiProfile, response: httpx.Response) -> Verdict:
    try:
        verdict = profile.classify(response)
    except httpx.ResponseNotRead:
        _unread(profile, "classify")
        return "ok"
    except Exception:
        logger.warning(
            "profile %s: classify() failed, taking the status", profile.name, exc_info=True
        )
        return "ok"
    return verdict if verdict in ("ok", "error", "quota_exhausted") else "ok"


RETRY_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class Limiter:
    """The rate-limit layer's decisions, shared by both twins."""

    def __init__(
        self,
        backend: Backend,
        clock: Clock,
        windows: dict[str, ShortWindow],
        breakers: dict[str, Breaker],
        emit: Emitter,
        enabled: bool = True,
        *,
        retries: int | None = None,
        max_body: int = MAX_BODY,
    ) -> None:
        self.enabled = enabled
        # The client's retries (None: each profile's own) and body cap (``make_client``).
        self.retries = retries
        self.max_body = max_body
        # Run once the state is closed (a temporary state directory removed).
        self.on_close: list[Callable[[], None]] = []
        self.backend = backend
        self.ledger = backend.ledger
        self.clock = clock
        self.windows = windows
        self.breakers = breakers
        self.emit = emit
        # A breaker keeps its state with the profile's window: shared like it.
        for name, breaker in breakers.items():
            if (window := windows.get(name)) is not None:
                breaker.window = window

    def close(self) -> None:
        try:
            self.emit.close()
            self.backend.close()
        finally:
            for callback in self.on_close:
                callback()
            self.on_close.clear()

    def profiled(self, call: Call | None) -> bool:
        return call is not None and call.profile is not DEFAULT_PROFILE

    def limits(self, call: Call, request: httpx.Request) -> bool:
        return self.enabled and request.method in call.profile.limited_methods

    def _breaker(self, call: Call) -> Breaker | None:
        return self.breakers.get(call.profile.name) if self.enabled else None

    def circuit_io(self, call: Call) -> bool:
        """Whether :meth:`open_circuit` would ask the store (the async twin then runs it
        off the event loop): only when the circuit may be half-open."""
        breaker = self._breaker(call)
        return breaker is not None and breaker.needs_store(self.clock.time())

    def open_circuit(self, call: Call) -> int:
        """Raise CircuitOpen if the profile's circuit refuses; the probe's token if this
        request is the probe, else 0.

        Asked before the request takes a place, as far as this process knows, and again
        once the limiter's check has told it what the other processes did.
        """
        breaker = self._breaker(call)
        return breaker.allow(self.clock.time()) if breaker is not None else 0

    def outcome(self, call: Call, ok: bool | None, probe: int, detail: str = "") -> None:
        """Tell the breaker what upstream did (None: the request never got there)."""
        now = self.clock.time()
        if ok is False and self.emit.active:
            self.emit(events.UpstreamFailed(call.profile.name, now, call.resource, detail))
        breaker = self._breaker(call)
        if breaker is None:
            return
        try:
            if ok is None:
                breaker.forget_probe(probe, now)
            else:
                breaker.record(ok, now, probe)
        except StateUnavailable:
            # The answer (or the error) still goes to the caller; the shared breaker
            # misses one outcome.
            logger.warning("profile %s: could not record an outcome", call.profile.name)

    def answered(
        self, call: Call, ticket: Ticket | None, response: httpx.Response, probe: int
    ) -> None:
        """Upstream answered: tell the breaker, then record the answer (see settle)."""
        ok = response.status_code < 500 and response.status_code != 429
        self.outcome(call, ok, probe, f"HTTP {response.status_code}")
        self.settle(call, ticket, response)

    def failed(self, call: Call, ticket: Ticket | None, exc: BaseException, probe: int) -> None:
        """The request failed on its way: tell the breaker, charge it (see abandon)."""
        failed = False if isinstance(exc, httpx.TransportError) else None
        self.outcome(call, failed, probe, type(exc).__name__)
        self.abandon(call, ticket, exc)

    def reserve(self, call: Call, request: httpx.Request) -> Ticket | None:
        cost = _guarded_cost(call.profile, request)
        return self.ledger.reserve(
            call.profile, call.priority, cost, self.clock.time(), account=call.account
        )

    def release(self, call: Call, ticket: Ticket | None) -> None:
        """The request was never sent: it spent nothing."""
        self.ledger.release(call.profile, ticket)

    def abandon(self, call: Call, ticket: Ticket | None, exc: BaseException) -> None:
        """The request failed on its way; charge it unless it surely never left."""
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            self.release(call, ticket)
        elif ticket is not None:
            call.upstream = True
            call.cost += ticket.cost
            settled = self.ledger.record(
                call.profile,
                ticket,
                ticket.cost,
                QuotaReading(),
                self.clock.time(),
                account=call.account,
            )
            call.remaining = settled.remaining
            self._alert(call, settled)

    def settle(self, call: Call, ticket: Ticket | None, response: httpx.Response) -> None:
        """Record the answer (a 429 with Retry-After, or a short window the API says is
        spent, pauses the profile everywhere); raise QuotaExhausted if the API says the
        quota is gone."""
        call.upstream = True
        profile = call.profile
        if response.status_code == 429:
            self._hold(call, response)
        if profile.read_window is not None:
            self._hold_window(call, response)
        reading = _guarded_reading(profile, response)
        call.verdict = _guarded_verdict(profile, response)
        estimate = ticket.cost if ticket is not None else 0
        spent = reading.last if reading.last is not None and reading.last >= 0 else estimate
        call.cost += spent
        exhausted = call.verdict == "quota_exhausted"
        try:
            settled = self.ledger.record(
                profile,
                ticket,
                spent,
                reading,
                self.clock.time(),
                exhausted=exhausted,
                account=call.account,
            )
            call.remaining = settled.remaining
            self._alert(call, settled)
        except StateUnavailable:
            # The answer is paid for: deliver it. The reservation stays in the shared
            # ledger and is charged when it times out (an over-count, never an under-count).
            logger.warning("profile %s: could not record a cost", profile.name, exc_info=True)
        if self.emit.active and profile.quota is not None:
            self.emit(events.QuotaChanged(profile.name, self.clock.time(), call.remaining))
        if exhausted:
            response.close()
            reset = ""
            if profile.quota is not None:
                end = _policy.period_end(profile.quota, self.clock.time())
                reset = f" until {_policy.iso_utc(end)}"
            raise QuotaExhausted(
                f"{profile.name}: the API says the quota is used up{reset}"
                f" (HTTP {response.status_code})",
                profile=profile.name,
                remaining=call.remaining,
                cost=call.cost,
            )

    def _alert(self, call: Call, settled: Settled) -> None:
        """The quota fell to an alert level (the ledger has logged it): tell subscribers."""
        if not settled.crossed or not self.emit.active:
            return
        now = self.clock.time()
        for level in settled.crossed:
            self.emit(
                events.QuotaLow(
                    call.profile.name,
                    now,
                    settled.remaining if settled.remaining is not None else 0,
                    level,
                    settled.total if settled.total is not None else 0,
                    call.account,
                )
            )

    def _hold(self, call: Call, response: httpx.Response) -> None:
        """A 429 with Retry-After: the API asks everyone on the key to hold off, not just
        this request. Every process on the profile's state waits until then."""
        now = self.clock.time()
        delay = _policy.retry_after(response.headers.get("retry-after"), now)
        if delay is not None:
            self._pause(call, now + delay, now)

    def _hold_window(self, call: Call, response: httpx.Response) -> None:
        """The API says its short window is spent: requests on the same key we don't
        know of (another client, a machine not sharing our state) used it up, and our
        own window would let the next request collect a 429. Hold off until it resets."""
        reading = _guarded_window(call.profile, response)
        if reading is None:
            return
        now = self.clock.time()
        delay = window_hold(call.profile, reading, now)
        if delay > 0:
            self._pause(call, now + delay, now)

    def _pause(self, call: Call, until: float, now: float) -> None:
        window = self.windows.get(call.profile.name)
        if window is None:
            return
        try:
            window.pause(until, now)
        except StateUnavailable:
            # Paused here all the same; the other processes learn from their own answers.
            logger.warning("profile %s: could not share a pause", call.profile.name)

    def retry_delay(
        self,
        call: Call,
        request: httpx.Request,
        attempt: int,
        *,
        response: httpx.Response | None = None,
        error: BaseException | None = None,
    ) -> float | None:
        """Seconds to wait before trying again, or None to stop here.

        Idempotent requests are retried after network errors, timeouts, 502, 503, 504
        and 429, at most ``retries`` times, with exponential backoff and full jitter; a
        ``Retry-After`` wins (and a 429 with one has paused the whole profile, see
        :meth:`settle`). The waits count against the priority's max wait, so a LOW
        request never retries.
        """
        profile = call.profile
        now = self.clock.time()
        delay: float | None = None
        if response is not None:
            if response.status_code not in RETRY_STATUSES:
                return None
            delay = _policy.retry_after(response.headers.get("retry-after"), now)
        elif isinstance(error, QuotaflowError) or not isinstance(error, httpx.TransportError):
            return None
        if request.method not in IDEMPOTENT or attempt >= self.retries_for(call, request):
            return None
        if delay is None:
            draw = self.clock.random()
            delay = _policy.backoff(attempt, profile.backoff, profile.backoff_max, draw)
        if call.waited + delay > profile.max_wait[call.priority] + 1e-9:
            return None
        return delay

    def retries_for(self, call: Call, request: httpx.Request) -> int:
        """How many times this request may be retried: the request's ``retries``
        extension, else the client's ``retries``, else the profile's."""
        chosen = request.extensions.get("retries")
        if chosen is None:
            chosen = self.retries
        if chosen is None or chosen is True:
            return call.profile.retries
        return 0 if chosen is False else int(chosen)


class Policy:
    """The caching layer's domain rules, shared by both twins."""

    def __init__(
        self, clock: Clock, max_body: int = MAX_BODY, rules: CacheRules | None = None
    ) -> None:
        self.clock = clock
        self.max_body = max_body
        self.rules = rules if rules is not None else CacheRules()

    def failed(self, call: Call | None, response: httpx.Response) -> bool:
        """Whether :meth:`judge` will take ``response`` for a failure (its body is then
        read: the fallback and the followers of a single flight keep a copy)."""
        if call is None or call.profile is DEFAULT_PROFILE:
            return False
        status = response.status_code
        return status >= 500 or status == 429 or call.verdict == "error"

    def judge(self, call: Call | None, request: httpx.Request, response: httpx.Response) -> bool:
        """Apply the URL rules and the profile to a fresh upstream answer before hishel
        sees it: the lifetime they give is written as ``Cache-Control: max-age``.

        Returns whether the answer replaces what is stored under the key.

        Raises:
            UpstreamFailed: the answer is a failure a stale one may stand in for.
        """
        now = self.clock.time()
        date = _policy.timestamp(response.headers.get("date"))
        if date is None or date > now + CLOCK_SKEW:
            # hishel ages a response from its Date: without one it would never age, and
            # one from the future would keep it fresh too long (an age below 0 is 0,
            # RFC 9111 §4.2.3): age it from when it arrived.
            response.headers["date"] = _policy.http_date(now)
        if call is None:
            return False
        profile = call.profile
        if profile is not DEFAULT_PROFILE:
            status = response.status_code
            if status >= 500 or status == 429:
                raise UpstreamFailed(response, f"status_{status}")
            if call.verdict == "error":
                raise UpstreamFailed(response, "error_body")
        ttl, why = self._lifetime(profile, request, response)
        if ttl is None:
            call.ttl = _policy.max_age(response.headers)
            call.reason = _header_reason(response)
            # A new answer replaces the old ones (a forced refresh included), unless the
            # answers vary by request header and live side by side under one key.
            return 200 <= response.status_code < 300 and "vary" not in response.headers
        response.headers["cache-control"] = f"max-age={int(ttl)}"
        response.headers.pop("expires", None)
        if date is not None and date < now - CLOCK_SKEW:
            # A lifetime the user's rules give counts from when the answer arrived: an
            # origin whose clock runs behind would otherwise have it stale on arrival.
            response.headers["date"] = _policy.http_date(now)
        call.ttl = float(int(ttl))
        call.reason = why
        # Answers that vary by request header live side by side under one key.
        return "vary" not in response.headers

    def _lifetime(
        self, profile: ApiProfile, request: httpx.Request, response: httpx.Response
    ) -> tuple[float | None, str]:
        """The lifetime the user's rules give the answer, and why (see ``_rules``);
        None: the answer's own headers decide."""
        status = response.status_code
        rule = self.rules.match(request.url)
        if rule is not None and rule.ttl is not None and status in HEURISTIC_STATUSES:
            return rule.ttl, f"fresh {int(rule.ttl)} s by the URL rule {rule.pattern!r}"
        if profile.freshness is not None and 200 <= status < 300:
            try:
                ttl = _policy.clean_ttl(profile.freshness(request, response, self.clock.time()))
            except httpx.ResponseNotRead:
                logger.warning(
                    "profile %s: the freshness rule reads the body, which is not read unless"
                    " the profile says reads_body=True (or the body is over max_body);"
                    " using default_ttl",
                    profile.name,
                )
                ttl = None
            except Exception:
                logger.warning(
                    "profile %s: freshness rule failed on %s, using default_ttl",
                    profile.name,
                    request.url.path,
                    exc_info=True,
                )
                ttl = None
            if ttl is not None:
                return ttl, f"fresh {int(ttl)} s by the freshness rule of profile {profile.name}"
        if explicit_freshness(response.headers):
            return None, ""
        default = profile.default_ttl if profile.default_ttl is not None else self.rules.default_ttl
        if default is None or status not in HEURISTIC_STATUSES:
            return None, ""
        return default, f"fresh {int(default)} s by default_ttl: the answer says nothing"

    def immutable(
        self, call: Call | None, request: httpx.Request, response: httpx.Response
    ) -> float | None:
        """Seconds the profile says a fresh 200 stays as it is (``ApiProfile.immutable``;
        ``math.inf``: for good), so that it goes to the cold store; None: it does not.
        Judged on the body only for ``reads_body`` profiles; a rule that reads an
        unread body (or fails) says None."""
        rule = call.profile.immutable if call is not None else None
        if call is None or rule is None or response.status_code != 200:
            return None
        profile = call.profile
        try:
            keep_for = rule(request, response)
        except httpx.ResponseNotRead:
            _unread(profile, "immutable")
            return None
        except Exception:
            logger.warning(
                "profile %s: immutable() failed on %s, not kept cold",
                profile.name,
                request.url.path,
                exc_info=True,
            )
            return None
        if isinstance(keep_for, bool) or not isinstance(keep_for, int | float):
            return None
        if math.isnan(keep_for) or keep_for <= 0:
            return None
        return float(keep_for)


def _header_reason(response: httpx.Response) -> str:
    """What the answer's own headers say of its freshness (RFC 9111 §4.2.1)."""
    headers = response.headers
    directives = headers.get("cache-control", "").lower()
    if "no-store" in directives:
        return "no-store in the answer's Cache-Control"
    if headers.get("vary", "").strip() == "*":
        return "Vary: * in the answer: never reused"
    if "no-cache" in directives:
        return "no-cache in the answer's Cache-Control: stored, revalidated before every use"
    lifetime = _policy.max_age(headers)
    if lifetime is not None:
        return f"fresh {lifetime} s by the answer's Cache-Control"
    if "s-maxage" in directives:
        return "only s-maxage in the answer's Cache-Control: for shared caches, not this one"
    if "expires" in headers:
        return "freshness from the answer's Expires"
    if "last-modified" in headers:
        return "heuristic freshness from the answer's Last-Modified"
    return "no freshness in the answer's headers and no rule for it"


def _reused(call: Call, response: httpx.Response, now: float) -> bool:
    """Whether anything could ever use the answer once stored (see _retention)."""
    headers = response.headers
    return (
        _policy.retention(
            freshness=_policy.freshness_lifetime(headers, now),
            max_stale=call.profile.max_stale,
            revalidation_window=call.profile.revalidation_window,
            validated=_policy.has_validator(headers),
        )
        > 0
    )


def outcome(call: Call, response: httpx.Response, max_body: int, now: float) -> None:
    """Read hishel's status into the call."""
    caching = response.extensions.get("caching")
    if not isinstance(caching, dict):
        return
    if caching.get("from_cache"):
        revalidated = caching.get("revalidated")
        call.cache = CacheStatus.REVALIDATED if revalidated else CacheStatus.HIT
        call.ttl = _policy.max_age(response.headers)
        call.stored, call.tier = True, "storage"
        call.reason = (
            "revalidated: the origin confirmed the stored answer (304)"
            if revalidated
            else "fresh in storage"
        )
        return
    # hishel also flags a full 200 to a conditional request as revalidated:
    # for the caller that is a new answer, so a miss.
    call.cache = CacheStatus.MISS
    stored = bool(caching.get("stored"))
    length = response.headers.get("content-length")
    if stored and is_event_stream(response.headers.get("content-type")):
        stored, call.reason = False, "an event stream is never stored"
    elif stored and length is not None and length.isdigit() and int(length) > max_body:
        stored, call.reason = False, f"the body is over max_body ({max_body} bytes)"
    elif stored and not _reused(call, response, now):
        stored = False  # the reason says why: no freshness, no validator, no max_stale
    elif not stored and call.verdict == "ok" and response.status_code < 500:
        call.reason = call.reason or "not storable under RFC 9111"
    call.stored = stored


def stale_reason(exc: BaseException) -> str:
    if isinstance(exc, CircuitOpen):
        return "circuit_open"
    if isinstance(exc, QuotaExhausted):
        return "quota"
    if isinstance(exc, RateLimited):
        return "rate_limit"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    return "network"


@attrs.frozen
class StaleChoice:
    entry: Entry
    age: float
    ttl: float | None


def choose_stale(
    call: Call, request: httpx.Request, entries: Iterable[Entry], now: float
) -> StaleChoice | None:
    """The newest stored answer still within the profile's max_stale for the request's
    priority, if any."""
    limit = call.profile.stale_limit(call.priority)
    best: StaleChoice | None = None
    best_at = float("-inf")
    for entry in entries:
        if entry.request.method != request.method:
            continue
        received = _policy.timestamp(entry.response.headers.get("date"))
        if received is None or received <= best_at:
            continue
        ttl = _policy.max_age(httpx.Headers(_pairs(entry)))
        age = max(0.0, now - received)
        if _policy.staleness_allows(age=age, ttl=ttl, max_stale=limit):
            best, best_at = StaleChoice(entry, age, ttl), received
    return best


def stale_eligible(call: Call, request: httpx.Request) -> bool:
    return request.method in SAFE_METHODS and call.profile.stale_limit(call.priority) > 0


def _pairs(entry: Entry) -> list[tuple[str, str]]:
    headers = entry.response.headers
    return [(name, value) for name in headers for value in headers.get_list(name) or []]


def stale_response(
    call: Call, request: httpx.Request, choice: StaleChoice, stream: Any, reason: str
) -> httpx.Response:
    """The stored answer, streamed from storage as it is read, marked stale."""
    headers = httpx.Headers(_pairs(choice.entry))
    headers["age"] = str(int(choice.age))
    response = httpx.Response(
        choice.entry.response.status_code, headers=headers, stream=stream, request=request
    )
    call.cache = CacheStatus.STALE
    response.extensions["quotaflow"] = call.info(
        cache=CacheStatus.STALE,
        ttl=choice.ttl,
        stale_reason=reason,
        age=choice.age,
        stored=True,
        tier="storage",
        reason=f"stale ({reason}): {int(choice.age)} s old, within max_stale",
    )
    return response


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
                _guarded_cost(call.profile, request) if call.profile is not DEFAULT_PROFILE else 0
            )
            if len(costs) > 4096:
                costs.clear()
            costs[resource] = saved
        emit.hit(profile, now, resource, saved)
        return
    if error is not None:
        if isinstance(error, QuotaExhausted | RateLimited | CircuitOpen):
            emit(events.Refused(profile, now, resource, stale_reason(error), call.priority.value))
        return
    assert response is not None
    info = response.extensions.get("quotaflow")
    if call.cache is CacheStatus.STALE and info is not None:
        emit(events.Stale(profile, now, resource, info.stale_reason or "", info.age or 0.0))
    elif call.cache is CacheStatus.REVALIDATED:
        emit(events.Revalidated(profile, now, resource, call.cost))
    elif call.upstream and 200 <= response.status_code < 300 and call.verdict == "ok":
        try:
            content = response.content
        except httpx.ResponseNotRead:
            content = b""
        emit(
            events.Fetched(
                profile, now, resource, response.status_code, call.cost, call.ttl, content
            )
        )
