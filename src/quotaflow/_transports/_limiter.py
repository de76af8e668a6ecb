"""The rate-limit layer's decisions (the ledger, the breaker, pauses, retries), shared
by both twins. Strictly private."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx

from .. import events
from .._alert_command import AlertCommand
from .._clock import Clock
from .._info import Lease, Route
from .._profiles import DEFAULT_PROFILE, QuotaReading
from .._state._backend import Backend, LeaseStep
from .._state._books import Ticket, snapshot
from .._state._breaker import Breaker
from .._state._leasing import Leasing
from .._state._pyrate import Decision
from .._state._shared import release
from .._state._short import ShortWindow
from .._state._steady import Steady
from ..events import Emitter
from ..exceptions import QuotaExhausted, StateUnavailable
from ._attempts import Tally, charged, retry_delay
from ._core import MAX_BODY
from ._guarded import guarded_cost, guarded_reading, guarded_verdict
from ._pauses import hold
from ._probe import LostLedgerProbe
from ._report import quota_alert

logger = logging.getLogger("quotaflow")


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
        self.leasing = Leasing(backend.leases, backend.ledger)
        self.alert_command = alert_command
        self.probe = LostLedgerProbe(self.ledger, clock)
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

    def profiled(self, route: Route | None) -> bool:
        return route is not None and route.profile is not DEFAULT_PROFILE

    def limits(self, route: Route, request: httpx.Request) -> bool:
        return self.enabled and request.method in route.profile.limited_methods

    def _breaker(self, route: Route) -> Breaker | None:
        return self.breakers.get(route.profile.name) if self.enabled else None

    def circuit_io(self, route: Route) -> bool:
        """Whether :meth:`open_circuit` would ask the store (the async twin then runs it
        off the event loop): only when the circuit may be half-open."""
        breaker = self._breaker(route)
        return breaker is not None and breaker.needs_store(self.clock.time())

    def open_circuit(self, route: Route) -> int:
        """Raise CircuitOpen if the profile's circuit refuses; the probe's token if this
        request is the probe, else 0.

        Asked before the request takes a place, as far as this process knows, and again
        once the limiter's check has told it what the other processes did.
        """
        breaker = self._breaker(route)
        return breaker.allow(self.clock.time()) if breaker is not None else 0

    def outcome(self, route: Route, ok: bool | None, probe: int, detail: str = "") -> None:
        """Tell the breaker what upstream did (None: the request never got there)."""
        now = self.clock.time()
        if ok is False and self.emit.active:
            self.emit(events.UpstreamFailed(route.profile.name, now, route.resource, detail))
        breaker = self._breaker(route)
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
            logger.warning("profile %s: could not record an outcome", route.profile.name)

    def answered(
        self,
        route: Route,
        tally: Tally,
        ticket: Ticket | None,
        response: httpx.Response,
        probe: int,
    ) -> None:
        """Upstream answered: tell the breaker, then record the answer (see settle)."""
        ok = response.status_code < 500 and response.status_code != 429
        self.outcome(route, ok, probe, f"HTTP {response.status_code}")
        self.settle(route, tally, ticket, response)

    def failed(
        self, route: Route, tally: Tally, ticket: Ticket | None, exc: BaseException, probe: int
    ) -> None:
        """The request failed on its way: tell the breaker, charge it (see abandon)."""
        failed = False if isinstance(exc, httpx.TransportError) else None
        self.outcome(route, failed, probe, type(exc).__name__)
        self.abandon(route, tally, ticket, exc)

    def before(self, route: Route, request: httpx.Request, tally: Tally) -> Ticket | None:
        """The one round trip before an upstream call: the reservation, the short
        window's check (with the pause and the circuit) and the route's single-flight
        lease (``_leasing``, taken on the first attempt only), in one transaction where
        the backend joins them; the lease alone for a request that reserves nothing.

        Raises:
            QuotaExhausted: the quota refuses (nothing was reserved, no lease taken).
            LeaseHeld: another process leads this resource: nothing was reserved.
        """
        lease = route.lease if not tally.leased else None
        ticket, took = None, False
        if self.limits(route, request):
            ticket, took = self._reserve(route, request, lease)
        if lease is not None:
            if not took:
                self.leasing.take(lease, self.clock.time())
            tally.leased = True
        return ticket

    def _reserve(
        self, route: Route, request: httpx.Request, lease: Lease | None
    ) -> tuple[Ticket | None, bool]:
        """Set the request's cost aside; where the ledger and the short window share a
        state file, the window's check (and the pause and the circuit with it) runs in
        the same transaction: one round trip, and the wait room, unless it must wait,
        asks nothing more (``ShortWindow.joined``). Also whether ``lease`` was taken."""
        cost, now = guarded_cost(route.profile, request), self.clock.time()
        window = self.windows.get(route.profile.name) if self.joint else None
        found: list[Decision] = []
        also = None
        if window is not None and window.joinable(self.ledger, now):

            def also(handle: Any) -> Callable[[Any], None] | None:
                return window.check_in(handle, now, found.append)

        first = self.leasing.first(lease, now) if lease is not None else None
        ticket, stored = self.ledger.reserve_with(
            route.profile, route.priority, cost, now, route.account, also, lease=first
        )
        if window is not None and stored and found:
            window.joined(route, found[-1], now)
        return ticket, stored and first is not None

    def release(self, route: Route, ticket: Ticket | None) -> None:
        """The request was never sent: it spent nothing."""
        self.ledger.release(route.profile, ticket)

    def abandon(
        self, route: Route, tally: Tally, ticket: Ticket | None, exc: BaseException
    ) -> None:
        """The request failed on its way; charge it unless it surely never left."""
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            self.release(route, ticket)
        elif ticket is not None:
            tally.cost += ticket.cost
            settled = self.ledger.record(
                route.profile,
                ticket,
                ticket.cost,
                QuotaReading(),
                self.clock.time(),
                account=route.account,
            )
            tally.remaining, tally.forecast = settled.remaining, settled.forecast
            quota_alert(self.emit, self.alert_command, route, settled, self.clock.time())

    def settle(
        self, route: Route, tally: Tally, ticket: Ticket | None, response: httpx.Response
    ) -> None:
        """Record the answer (a 429 with Retry-After, or a short window the API says is
        spent, pauses the profile everywhere); raise QuotaExhausted if the API says the
        quota is gone."""
        profile = route.profile
        hold(self.windows.get(profile.name), route, response, self.clock.time())
        reading = guarded_reading(profile, response)
        tally.verdict = guarded_verdict(profile, response)
        exhausted = tally.verdict == "quota_exhausted"
        estimate = ticket.cost if ticket is not None else 0
        spent = charged(response.status_code, reading, estimate, exhausted=exhausted)
        tally.cost += spent
        land = self._landing(route, tally, response)
        try:
            settled = self.ledger.record(
                profile,
                ticket,
                spent,
                reading,
                self.clock.time(),
                exhausted=exhausted,
                account=route.account,
                lease=land,
            )
            tally.remaining, tally.forecast = settled.remaining, settled.forecast
            tally.landed = land is not None and settled.stored
            quota_alert(self.emit, self.alert_command, route, settled, self.clock.time())
        except StateUnavailable:
            # The answer is paid for: deliver it. The reservation stays in the shared
            # ledger and is charged when it times out (an over-count, never an under-count).
            logger.warning("profile %s: could not record a cost", profile.name, exc_info=True)
        if self.emit.active and profile.quota is not None:
            changed = events.QuotaChanged(
                profile.name, self.clock.time(), tally.remaining, forecast=tally.forecast
            )
            self.emit(changed)
        if exhausted:
            response.close()
            reset = ""
            if profile.quota is not None:
                reset = f" until {snapshot(profile, None, self.clock.time()).reset}"
            raise QuotaExhausted(
                f"{profile.name}: the API says the quota is used up{reset}"
                f" (HTTP {response.status_code})",
                profile=profile.name,
                remaining=tally.remaining,
                cost=tally.cost,
            )

    def _landing(self, route: Route, tally: Tally, response: httpx.Response) -> LeaseStep | None:
        """The answer came: the lease it took lands with the settle (``_leasing``); not a
        failure's, which may be retried and is not stored (given back as before)."""
        if route.lease is None or not tally.leased or response.status_code >= 400:
            return None
        return self.leasing.land(route.lease, self.clock.time())

    def retry_delay(
        self,
        route: Route,
        tally: Tally,
        request: httpx.Request,
        attempt: int,
        *,
        response: httpx.Response | None = None,
        error: BaseException | None = None,
    ) -> float | None:
        """Seconds to wait before trying again, or None to stop here (see
        ``_attempts.retry_delay``; a 429 with Retry-After has paused the whole profile,
        see :meth:`settle`)."""
        now, draw = self.clock.time(), self.clock.random
        waited = tally.waited
        return retry_delay(
            route, request, attempt, self.retries, waited, now, draw, response, error
        )
