"""The rate-limit layer's decisions (the ledger, the breaker, pauses, retries), shared
by both twins. Strictly private."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import httpx

from .. import _policy, events
from .._alert_command import AlertCommand
from .._clock import Clock
from .._info import Call
from .._profiles import DEFAULT_PROFILE, ApiProfile, QuotaReading, WindowReading
from .._state._backend import Backend
from .._state._books import Settled, Ticket, account_name, snapshot
from .._state._breaker import Breaker
from .._state._pyrate import Decision
from .._state._shared import release
from .._state._short import ShortWindow
from .._state._steady import Steady
from ..events import Emitter
from ..exceptions import QuotaExhausted, QuotaflowError, StateUnavailable
from ._core import MAX_BODY
from ._guarded import guarded_cost, guarded_reading, guarded_verdict, guarded_window

logger = logging.getLogger("quotaflow")

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


# A call the API refused for its credential (a bad, revoked or unauthorised key).
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
        alert_command: AlertCommand | None = None,
    ) -> None:
        self.enabled = enabled
        # Join the window's check to the reservation where the backend can (False: two
        # round trips, as before; benchmarks compare).
        self.joint = True
        # The client's retries (None: each profile's own) and body cap (``make_client``).
        self.retries = retries
        self.max_body = max_body
        # Run once the state is closed (a temporary state directory removed).
        self.on_close: list[Callable[[], None]] = []
        self.backend = backend
        self.ledger = backend.ledger
        self.alert_command = alert_command
        self._probed: set[str] = set()  # ledger rows this process sent the probe for
        self.clock = clock
        self.windows = windows
        self.breakers = breakers
        self.emit = emit
        # Waits within the process are judged on the clock's steady time (``_steady``).
        steady = Steady(clock.monotonic)
        for short in windows.values():
            short.steady = steady
        # A breaker keeps its state with the profile's window: shared like it.
        for name, breaker in breakers.items():
            if (window := windows.get(name)) is not None:
                breaker.window = window

    def close(self) -> None:
        try:
            self.emit.close()
            release(self.backend)  # closed if no other client shares it
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
        """Set the request's cost aside; where the ledger and the short window share a
        state file, the window's check (and the pause and the circuit with it) runs in
        the same transaction: one round trip, and the wait room, unless it must wait,
        asks nothing more (``ShortWindow.joined``)."""
        cost, now = guarded_cost(call.profile, request), self.clock.time()
        window = self.windows.get(call.profile.name) if self.joint else None
        found: list[Decision] = []
        also = None
        if window is not None and window.joinable(self.ledger, now):

            def also(handle: Any) -> Callable[[Any], None] | None:
                return window.check_in(handle, now, found.append)

        ticket, stored = self.ledger.reserve_with(
            call.profile, call.priority, cost, now, call.account, also
        )
        if window is not None and stored and found:
            window.joined(call, found[-1], now)
        return ticket

    def wants_probe(self, call: Call) -> bool:
        """Whether to send the profile's free probe now: its ledger row was found
        unknown (lost) and this process has not probed it yet (once per row)."""
        profile = call.profile
        if profile.probe is None or not self.ledger.unknown:
            return False
        name = account_name(profile, call.account)
        if name not in self.ledger.unknown or name in self._probed:
            return False
        self._probed.add(name)
        return True

    def probe_request(self, call: Call) -> httpx.Request:
        """The free probe: a GET of ``ApiProfile.probe`` on the request's host, with its
        credentials (the secret query parameters and headers) and nothing else."""
        profile = call.profile
        assert profile.probe is not None
        params = httpx.QueryParams(
            [(k, v) for k, v in call.url.params.multi_items() if k in profile.secret_params]
        )
        url = call.url.copy_with(path=profile.probe, query=None)
        return httpx.Request("GET", url, params=params, headers=list(call.secret_headers))

    def probed(self, call: Call, response: httpx.Response) -> None:
        """The probe's answer: the API's count syncs the ledger (it cost nothing)."""
        reading = guarded_reading(call.profile, response)
        if reading.remaining is None:
            return
        settled = self.ledger.record(
            call.profile, None, 0, reading, self.clock.time(), account=call.account
        )
        call.remaining = settled.remaining

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
        reading = guarded_reading(profile, response)
        call.verdict = guarded_verdict(profile, response)
        exhausted = call.verdict == "quota_exhausted"
        estimate = ticket.cost if ticket is not None else 0
        spent = charged(response.status_code, reading, estimate, exhausted=exhausted)
        call.cost += spent
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
                reset = f" until {snapshot(profile, None, self.clock.time()).reset}"
            raise QuotaExhausted(
                f"{profile.name}: the API says the quota is used up{reset}"
                f" (HTTP {response.status_code})",
                profile=profile.name,
                remaining=call.remaining,
                cost=call.cost,
            )

    def _alert(self, call: Call, settled: Settled) -> None:
        """The quota fell to an alert level (the ledger has logged it): run the user's
        command, tell subscribers."""
        if not settled.crossed:
            return
        if self.alert_command is not None:
            for level in settled.crossed:
                self.alert_command.run(
                    call.profile.name, settled.remaining or 0, level, settled.total or 0
                )
        if not self.emit.active:
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
        reading = guarded_window(call.profile, response)
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
