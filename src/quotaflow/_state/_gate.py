"""A profile's *gate*: what every process on the state must respect besides the rates.

Kept after the short window's books in the same state (see ``_window``), as::

    pause, failures, opened, probe, -1

``pause``: nobody sends before it (an API's 429 with ``Retry-After``; it only ever
moves later). ``failures``: upstream failures in a row, all processes together;
``opened``: the circuit breaker is open until then, after which one ``probe`` may go
(the probe's lease runs until ``probe``, which is also its token). Old layouts have no
gate, and a quiet profile's state drops it again, so they read as before. The gate is
odd-length and ends with -1 (a book is even-length and never negative), so it is never
mistaken for a rate's book, whatever rates read the state.

The operations (:class:`GateOp`) run in the same atomic step as a check, so the pause
and the breaker cost no round trip of their own on the way in: every check answers with
the gate as it stands (:attr:`WindowDecision.gate`). Times are epoch milliseconds.

Strictly private.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import attrs

from ._pyrate import Decision, State, WindowRate

# The gate's last value; its length with it.
GATE_MARK = -1
GATE_LEN = 5
# In Redis a state holding a gate is kept this long past the last of its times (pause,
# opening, probe lease) and its last write, whatever the rates need: a failure count
# on its own is forgotten an hour after the last request that wrote the state.
KEEP_MS = 3_600_000

# The operations' codes (CHECK is the limiter's own), as the Lua twin reads them, and
# what FAIL and SUCCEED changed.
CHECK, HOLD, PROBE, FAIL, SUCCEED, FORGET = range(6)
OPENED, CLOSED = 1, 2
# A check whose clock is more than this behind the state's latest time (ms) finds the
# clock stepped back (an NTP step, a restored VM): longer than any wait for the state's
# lock (SQLite's busy timeout, 2 s) and any skew between machines kept in time.
JUMP_MS = 5_000


class GateState(NamedTuple):
    """The shared pause and circuit, as a check or an operation left them (ms)."""

    pause: int = 0  # nobody sends before this (0: no pause)
    failures: int = 0  # upstream failures in a row, every process together
    opened: int = 0  # the circuit is open until this, then half-open (0: closed)
    probe: int = 0  # the probe's lease runs until this; also its token (0: none)

    def shifted(self, by: int) -> GateState:
        """Every moment in it moved by ``by`` ms (a clock that stepped, see ``_window``)."""

        def move(value: int) -> int:
            return max(value + by, 1) if value > 0 else 0

        return GateState(move(self.pause), self.failures, move(self.opened), move(self.probe))


NO_GATE = GateState()

# A refusal because of the pause names this instead of one of the rates.
PAUSED = WindowRate(1, 1)


@dataclass(frozen=True)
class WindowDecision(Decision):
    """A pyrate-limiter ``Decision`` that also tells the gate as it stands after the step.

    ``granted``: for a probe request, the token of the lease this caller now holds
    (0: not granted). ``changed``: OPENED or CLOSED when this operation changed the
    circuit (0: it did not). Strictly private.
    """

    gate: GateState = NO_GATE
    granted: int = 0
    changed: int = 0


# Admitted, nothing in the gate: the common answer, allocated once.
PASSED = WindowDecision()


def passed(gate: GateState) -> WindowDecision:
    return PASSED if gate == NO_GATE else WindowDecision(gate=gate)


@attrs.frozen
class GateOp:
    """One operation on the gate; build it with the class methods."""

    code: int
    until: int = 0  # HOLD: the pause's end (ms)
    lease: int = 0  # PROBE: how long the probe's lease runs (ms)
    threshold: int = 0  # FAIL: failures in a row that open the circuit
    cooldown: int = 0  # FAIL: how long it stays open (ms)
    token: int = 0  # FAIL, FORGET: the probe's token (0: not the probe)

    @classmethod
    def hold(cls, until: int) -> GateOp:
        """Pause everyone until ``until`` (ms), unless a later pause already holds."""
        return cls(HOLD, until=until)

    @classmethod
    def take_probe(cls, lease: int) -> GateOp:
        """Take the probe of a half-open circuit for ``lease`` ms, if nobody holds it."""
        return cls(PROBE, lease=lease)

    @classmethod
    def fail(cls, threshold: int, cooldown: int, token: int) -> GateOp:
        """One more failure: open for ``cooldown`` ms at ``threshold`` in a row, or at
        once if this was the probe holding ``token`` (0: not the probe)."""
        return cls(FAIL, threshold=threshold, cooldown=cooldown, token=token)

    @classmethod
    def succeed(cls) -> GateOp:
        """Upstream answered: no failures in a row, the circuit closed."""
        return cls(SUCCEED)

    @classmethod
    def forget(cls, token: int) -> GateOp:
        """The probe holding ``token`` never reached upstream: free its lease."""
        return cls(FORGET, token=token)

    def args(self) -> tuple[int, int, int, int]:
        """The operation as the Lua script takes it: code and three numbers."""
        if self.code == HOLD:
            return (HOLD, self.until, 0, 0)
        if self.code == PROBE:
            return (PROBE, self.lease, 0, 0)
        if self.code == FAIL:
            return (FAIL, self.threshold, self.cooldown, self.token)
        if self.code == FORGET:
            return (FORGET, self.token, 0, 0)
        return (self.code, 0, 0, 0)


def split(values: list[int]) -> tuple[list[int], GateState]:
    """The books' values and the gate (none: ``NO_GATE``)."""
    if len(values) > GATE_LEN and values[-1] == GATE_MARK:
        gate = values[-GATE_LEN:-1]
        if min(gate) >= 0:
            return values[:-GATE_LEN], GateState(*gate)
    return values, NO_GATE


def settled(gate: GateState, at: int) -> GateState:
    """Without a pause that has passed."""
    return gate._replace(pause=0) if 0 < gate.pause <= at else gate


def operate(gate: GateState, at: int, op: GateOp) -> WindowDecision:
    """One operation on the gate, at ``at`` (ms)."""
    pause, failures, opened, probe = gate
    granted = changed = 0
    if op.code == HOLD:
        if op.until > at:
            pause = max(pause, op.until)
    elif op.code == PROBE:
        if opened and at >= opened and probe <= at:
            probe = granted = at + max(op.lease, 1)
    elif op.code == FAIL:
        failures += 1
        if op.token and probe == op.token:  # the probe failed: another cool-down
            opened, probe = max(at + op.cooldown, 1), 0
        elif not opened and failures >= op.threshold:
            opened, probe, changed = max(at + op.cooldown, 1), 0, OPENED
    elif op.code == SUCCEED:
        changed = CLOSED if opened else 0
        failures = opened = probe = 0
    elif op.code == FORGET and op.token and probe == op.token:
        probe = 0
    state = GateState(pause, failures, opened, probe)
    return WindowDecision(gate=state, granted=granted, changed=changed)


def gate_of(state: State, now: int) -> GateState:
    """The gate a stored state holds at ``now`` (ms), for reporting: decoded as a check
    decodes it, a pause that has passed dropped; ``NO_GATE`` for a state without one (an
    older layout, a quiet profile). Reads only; the state may be any rates'."""
    values, gate = split(list(map(int, state)))
    last = values[0] if values else 0
    if now < last - JUMP_MS:  # the clock stepped back: the state moves with it
        gate, last = gate.shifted(now - last), now
    return settled(gate, max(now, last))
