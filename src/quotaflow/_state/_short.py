"""A profile's short window and gate over a store, as the request path uses them.
Strictly private."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._profiles import ApiProfile
from ._board import LOWEST, Board, SqliteBoard
from ._gate import NO_GATE, PAUSED, GateOp, GateState, WindowDecision, gate_of
from ._pyrate import Decision, StateStore, WindowRate, check
from ._sqlite import SqliteWindowStore
from ._steady import Steady
from ._window import SlidingCap

if TYPE_CHECKING:
    from ._ledger import Ledger

# Added to a wait, in seconds: float rounding of `now + wait` must not fall short of the
# millisecond that admits (~0.25 us is the float resolution of today's epoch seconds).
_MARGIN = 1e-6


class ShortWindow:
    """A profile's short-window rates over a store, and the profile's *gate*: a pause
    the API itself may ask for (429 with Retry-After) and its circuit breaker's state,
    shared by every process on the store (see ``_window``).

    Each ``Rate(limit, per, burst)``: never more than ``limit`` requests in any ``per``
    seconds, at most ``burst`` at once (see ``_window.SlidingCap``). ``profile`` None:
    no rates, only the gate.
    """

    def __init__(self, profile: ApiProfile | None, store: StateStore) -> None:
        check()  # pyrate-limiter's internals are still the ones this was written for
        self.rates = sorted(
            (
                WindowRate(r.limit, max(1, round(r.per * 1000)), r.burst)
                for r in (profile.rates if profile is not None else ())
            ),
            key=lambda rate: rate.interval,
        )
        self.algorithm = SlidingCap()
        self.store = store
        # The gate as the last check or operation of this process found it, and the
        # latest pause known here (seconds): until then no check needs the store.
        self.gate: GateState = NO_GATE
        # Within the process, deadlines are judged on steady time (``_steady``): the
        # pause's end, and the gate's times as steady minus wall when it was learnt.
        # The limiter hands its clock's (``Limiter``); until then, the system's.
        self.steady = Steady()
        self._pause_end = 0.0
        self._gate_shift = 0.0
        # Calls a check joined to their reservation admitted (``Limiter.reserve``): the
        # wait room lets them through without asking the store again. By id (a call is
        # not hashable), holding the call so the id cannot be reused meanwhile.
        self._credits: dict[int, object] = {}
        self.waiters = 0  # in this process's wait room: a joined check would jump them
        # Other processes' waiters on the shared state (``_board``), None: not shared.
        self.board: Board | None = None

    def _learn(self, decision: Decision, now: float) -> Decision:
        if isinstance(decision, WindowDecision):  # every store running SlidingCap answers one
            self.gate = decision.gate
            self._gate_shift = self.steady.at(now) - now
            if decision.gate.pause:
                end = decision.gate.pause / 1000 + self._gate_shift
                self._pause_end = max(self._pause_end, end)
        return decision

    def open_for(self, now: float) -> float:
        """Seconds the circuit stays open as this process last learnt it (0: closed, or
        half-open), judged on steady time: a clock stepped back never lengthens it."""
        if not self.gate.opened:
            return 0.0
        return max(self.gate.opened / 1000 + self._gate_shift - self.steady.at(now), 0.0)

    def _step(self) -> int:
        """The latest step back of this process's clock (ms), for the store to move its
        times back by exactly that (``_window.rebased``)."""
        return math.ceil(self.steady.step * 1000)

    def _paused_for(self, now: float) -> float:
        return self._pause_end - self.steady.at(now) if self._pause_end else 0.0

    def apply(self, operation: GateOp, now: float) -> WindowDecision:
        """Apply one of the gate's operations (``GateOp.hold(...)``...) atomically.

        Raises:
            StateUnavailable: the shared store is unreachable and fails closed.
        """
        algorithm = SlidingCap(operation, stepped=self._step())
        decision = self.store.check(algorithm, self.rates, math.floor(now * 1000), 1)
        assert isinstance(decision, Decision)  # sync stores only
        self._learn(decision, now)
        return decision if isinstance(decision, WindowDecision) else WindowDecision(gate=self.gate)

    def pause(self, until: float, now: float) -> None:
        """Nobody sends before ``until``: this process at once, the others on this store
        from their next check. A pause only ever moves later.

        Raises:
            StateUnavailable: the shared store is unreachable and fails closed (the
                pause still holds in this process).
        """
        self._pause_end = max(self._pause_end, self.steady.at(now) + until - now)
        # Rounded up: never a millisecond short of what the API asked.
        self.apply(GateOp.hold(math.ceil(until * 1000)), now)

    def _algorithm(self) -> SlidingCap:
        step = self._step()
        return SlidingCap(stepped=step) if step else self.algorithm

    def joinable(self, ledger: Ledger, now: float) -> bool:
        """Whether a check can be joined to a reservation in ``ledger``'s transaction
        (one round trip for both): nobody waits here, no pause, the same state file."""
        board = self.board
        return (
            self.waiters == 0
            and self._paused_for(now) <= 0
            and ledger.joint(self.store)
            # A board in the same file is read in the transaction (``check_in``).
            and (board is None or ledger.joint(board) or not board.ahead(LOWEST, now))
        )

    def check_in(
        self, handle: Any, now: float, done: Callable[[Decision], None]
    ) -> Callable[[Any], None] | None:
        """A check in the ledger's transaction (see :meth:`joinable`), its decision to
        ``done``: at once on a SQLite cursor; on Redis, joined to the ledger's script
        call (``_redis_books.Step``), and what reads its reply is returned."""
        store, algorithm, now_ms = self.store, self._algorithm(), math.floor(now * 1000)
        if isinstance(store, SqliteWindowStore):
            if isinstance(self.board, SqliteBoard) and self.board.ahead_in(handle, LOWEST, now):
                return None  # another process's waiter goes first: the wait room checks
            done(store.check_in(handle, algorithm, self.rates, now_ms, 1))
            return None
        read = store.queue(handle, algorithm, self.rates, now_ms, 1)  # type: ignore[attr-defined]
        return lambda reply: done(read(reply))

    def joined(self, call: object, decision: Decision, now: float) -> None:
        """The joined check was stored: learn from it; an admitted call has its place."""
        self._learn(decision, now)
        if decision.allowed:
            self._credits[id(call)] = call

    def take_credit(self, call: object) -> bool:
        """Whether ``call`` was admitted by a joined check (then it has its place)."""
        return self._credits.pop(id(call), None) is not None

    def try_acquire(self, now: float) -> float:
        """Take a place; return 0 if admitted, else seconds to wait (-1: never fits).

        A caller that comes back after the wait is admitted, unless someone else took
        the place meanwhile (or asked everyone to hold off).
        """
        if (paused := self._paused_for(now)) > 0:
            return paused
        # Milliseconds, truncated: the algorithm counts a stamp inclusively for that.
        now_ms = math.floor(now * 1000)
        # Sync stores only (pyrate-limiter types check() as maybe-awaitable).
        decision = self.store.check(self._algorithm(), self.rates, now_ms, 1)
        assert isinstance(decision, Decision)
        self._learn(decision, now)
        if decision.allowed:
            return 0.0
        if decision.failing_rate is PAUSED and (paused := self._paused_for(now)) > 0:
            return paused  # as if this process had paused itself
        if decision.retry_after_ms is None:
            return -1.0
        # The wait to the first millisecond that admits, measured from the real `now`
        # (not its truncation), plus a microsecond so that float rounding never lands a
        # waiter just short of it.
        due = (now_ms + max(decision.retry_after_ms, 1)) / 1000
        return max(due - now, 0.0) + _MARGIN

    def available(self, now: float) -> int | None:
        """How many requests would be admitted now (None: no rates). For reporting."""
        if not self.rates:
            return None
        state = self.store.read(self.algorithm, self.rates)
        assert isinstance(state, tuple)
        return self.algorithm.available(self.rates, state, math.floor(now * 1000))

    def stored_gate(self, now: float) -> GateState:
        """The gate as the store holds it at ``now``, read without a check (reporting:
        what every process on the store goes by, not what this one last learnt)."""
        state = self.store.read(self.algorithm, self.rates)
        assert isinstance(state, tuple)
        return gate_of(state, math.floor(now * 1000))
