"""What a short-window ``Rate`` means: a sliding cap, plus a token bucket when ``burst < limit``.

A ``Rate(limit, per, burst)`` admits a request only if

- fewer than ``limit`` requests were admitted in the last ``per`` seconds (a sliding
  window, so every calendar window holds too), and
- when ``burst < limit``, a token bucket of ``burst`` tokens refilling at
  ``limit / per`` has a token (pyrate-limiter's GCRA, reused as is).

A token bucket alone cannot do this: one of ``burst`` tokens refilling ``limit`` per
``per`` admits ``burst + limit`` in the ``per`` after an idle spell (59 in a second for
30/s, burst 30).

The state is a pyrate-limiter ``StateAlgorithm`` state, so any ``StateStore`` keeps it
atomically (ours in SQLite, pyrate-limiter's in memory, the Lua below in Redis), and a
check costs what it did with the token bucket: one transaction, or one round trip. It
is a flat tuple of integers (comma-separated text in SQLite, MessagePack in Redis):
``last``, the latest time a check ran at, then per rate::

    tat, n, stamp_1, units_1, ..., stamp_n, units_n

``tat`` is the GCRA's theoretical arrival time (microseconds; 0 when ``burst == limit``,
which needs none); the ``n`` pairs are a log of admissions, oldest first: ``units``
admitted at ``stamp`` (milliseconds). The log stays bounded: entries that left the
window are dropped at each admission, so it holds at most ``limit`` units (the window
never holds more). Up to ``CAP`` requests per window a stamp is the admission's own
millisecond (exact); above that, stamps are rounded *up* to a grid of
``interval / CAP``, so a log holds at most ``CAP + 2`` pairs whatever the traffic.
Rounding up counts an entry longer, never shorter: the cap still holds, and a
saturated limiter loses at most one grid step per window (>= CAP / (CAP + 1) of the
rate).

After the books, while any of it matters, comes the profile's *gate* (the 429 pause
and the circuit breaker, see ``_gate``): ``SlidingCap(GateOp...)`` applies one of its
operations in the same atomic step as a check would run.

Times are integer milliseconds, as pyrate-limiter's. A request stamped ``t`` counts
while ``now - interval <= t`` (inclusive, as pyrate-limiter's ``SlidingWindowLog``):
with stamps truncated to the millisecond, two real times less than ``per`` apart are
then always counted together. The price is one millisecond per window: a full
window's oldest request leaves at ``t + interval + 1``.

A check runs at ``max(now, last)``: a process reads its clock before it gets the
store's lock, so another may have checked at a later time meanwhile; the late one is
judged at that later time (its wait still measured from its own ``now``). A clock
more than ``JUMP_MS`` behind ``last`` stepped back: the state moves back with it
(:func:`rebased`), so no wait grows past its length. (Machines sharing Redis need
clocks in time, as for any limiter keyed on time.)

Strictly private.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import ceil

from ._gate import (
    CHECK,
    GATE_MARK,
    JUMP_MS,
    NO_GATE,
    PAUSED,
    GateOp,
    GateState,
    WindowDecision,
    operate,
    passed,
)
from ._gate import settled as _settled
from ._gate import split as _split
from ._lua import WINDOW_LUA
from ._pyrate import (
    Decision,
    State,
    StateAlgorithm,
    WindowRate,
    emission_us,
    gcra_consumed,
    gcra_step,
    log_retry_after,
    log_window_start,
)

# Requests per window up to which the log is exact (one pair per millisecond at most).
CAP = 64

# One rate's part of the state: tat, and the log as [stamp, units] pairs, oldest first.
_Book = tuple[int, list[list[int]]]


def grid(rate: WindowRate) -> int:
    """Milliseconds a log stamp is rounded up to: 1 (exact) up to ``CAP`` per window."""
    return 1 if rate.limit <= CAP else ceil(rate.interval / CAP)


def burst(rate: WindowRate) -> int:
    # A burst above the limit could never be spent: the cap stops it first.
    return min(rate.burst, rate.limit)


def ttl_ms(rates: Sequence[WindowRate]) -> int:
    """How long an idle key's state still matters, doubled (for stores that expire it).

    A stamp is at most one grid step ahead of the last check and counts for
    ``interval + 1`` ms more; the GCRA's tat is at most ``burst * emission <= interval``
    ahead.
    """
    return max((2 * (rate.interval + grid(rate) + 1) for rate in rates), default=1)


def _unpack(rates: Sequence[WindowRate], state: State) -> tuple[int, list[_Book], GateState]:
    """``last``, one book per rate, and the gate; fresh books if ``state`` holds none
    for ``rates`` (another profile's rates, an older layout). The gate does not depend
    on the rates: it survives a change of them."""
    values, gate = _split(list(map(int, state)))
    books: list[_Book] = []
    at = 1
    for _ in rates:
        if at + 2 > len(values):
            break
        tat, n = values[at], values[at + 1]
        end = at + 2 + 2 * n
        if n < 0 or end > len(values):
            break
        pairs = values[at + 2 : end]
        books.append((tat, [list(pair) for pair in zip(pairs[::2], pairs[1::2], strict=True)]))
        at = end
    else:
        if at == len(values):
            return values[0], books, gate
    return 0, [(0, []) for _ in rates], gate


def _pack(last: int, books: Sequence[_Book], gate: GateState) -> State:
    if not books and gate == NO_GATE:
        return (0,)  # nothing that matters (Redis deletes it)
    out = [last]
    for tat, log in books:
        out += [tat, len(log)]
        for pair in log:
            out += pair
    if gate != NO_GATE:
        out += [*gate, GATE_MARK]
    return tuple(out)


def rebased(
    last: int, books: list[_Book], gate: GateState, now: int, step: int = 0
) -> tuple[int, list[_Book], GateState]:
    """The state moved back with a clock that stepped back, else as it is.

    Every time in it (stamps, tats, the pause, the cool-down, the probe's lease) moves
    back, so what was left of each window and wait is left of it still: a step back
    never lengthens a wait past its stated length. By ``step`` (ms) when the caller
    saw its clock step back by that much (``_steady``), and that explains the gap;
    else by the whole gap, as if the step came right after the latest check (a new
    process cannot know when it came: the time between is counted again).
    """
    if now >= last - JUMP_MS:
        return last, books, gate
    by = -step if step > 0 and last - step <= now else now - last
    moved = [
        (max(tat + by * 1000, 0) if tat else 0, [[stamp + by, units] for stamp, units in log])
        for tat, log in books
    ]
    return last + by, moved, gate.shifted(by)


def _live(rate: WindowRate, log: list[list[int]], now: int) -> list[list[int]]:
    start = log_window_start(rate, now)  # inclusive
    return [pair for pair in log if pair[0] >= start]


class SlidingCap(StateAlgorithm):
    """Never more than ``limit`` in any ``interval``; at most ``burst`` at once; and
    nothing while the gate's pause runs.

    ``SlidingCap()`` checks a request; ``SlidingCap(GateOp.hold(...))`` (and the other
    :class:`~._gate.GateOp`\\s) applies an operation on the gate with the same
    ``store.check(...)`` (weight ignored, books kept as they are). Keeps no state of its
    own; ``step`` and the Lua script make the same decisions (tested against each other).
    Strictly private.
    """

    def __init__(self, op: GateOp | None = None, *, stepped: int = 0) -> None:
        self.op = op
        # The caller's clock stepped back this much lately (ms; see ``rebased``).
        self.stepped = stepped

    def initial(self, rates: list[WindowRate]) -> State:
        return (0,) + (0, 0) * len(rates)

    def max_weight(self, rate: WindowRate) -> int:
        return burst(rate)

    def decode(self, values: Sequence[str]) -> State:
        return tuple(map(int, values))

    def step(
        self, rates: list[WindowRate], state: State, now: int, weight: int
    ) -> tuple[State, Decision]:
        unpacked = _unpack(rates, state)
        last, books, gate = rebased(*unpacked, now, self.stepped)
        at = max(now, last)
        gate = _settled(gate, at)
        if last != unpacked[0]:
            # Moved back with the clock: kept so even if refused (the next check must
            # not move it again from the old times, which would pause for ever).
            state = _pack(last, books, gate)
        if self.op is not None and self.op.code != CHECK:
            decision = operate(gate, at, self.op)
            # Stamped: a step back of the clock is told by the state's latest time.
            return _pack(at, books, decision.gate), decision
        if gate.pause:
            return state, WindowDecision(
                failing_rate=PAUSED, retry_after_ms=gate.pause - now, gate=gate
            )
        if not rates:
            return _pack(last, books, gate), passed(gate)
        return _check(rates, state, books, gate, at, now, weight)

    def available(self, rates: list[WindowRate], state: State, now: int) -> int:
        """How many requests would be admitted at ``now``, one after another (reporting)."""
        last, books, gate = rebased(*_unpack(rates, state), now, self.stepped)
        at = max(now, last)
        if _settled(gate, at).pause:
            return 0
        found = None
        for rate, (tat, log) in zip(rates, books, strict=True):
            room = rate.limit - sum(units for _, units in _live(rate, log, at))
            if burst(rate) < rate.limit:
                room = min(room, burst(rate) - gcra_consumed(rate, tat, at))
            found = room if found is None else min(found, room)
        return max(found or 0, 0)

    def consumed(self, rates: list[WindowRate], state: State, now: int) -> int:
        return max(rate.limit for rate in rates) - self.available(rates, state, now)

    def redis_script(self) -> str:
        return WINDOW_LUA

    def redis_args(self, rates: list[WindowRate]) -> list[int | float]:
        args: list[int | float] = [
            value
            for rate in rates
            for value in (rate.limit, rate.interval, burst(rate), grid(rate), emission_us(rate))
        ]
        # A check sends no operation: four arguments fewer on every request.
        if self.stepped:
            op = self.op.args() if self.op is not None else (CHECK, 0, 0, 0)
            return [*args, *op, self.stepped]
        return args if self.op is None or self.op.code == CHECK else args + list(self.op.args())


def _wait(
    rate: WindowRate, tat: int, log: list[list[int]], at: int, weight: int
) -> tuple[int, int]:
    """The wait ``rate`` imposes at ``at`` (ms, 0: admitted) and its new tat."""
    mine = 0
    if burst(rate) < rate.limit:
        new_tat, smooth = gcra_step(rate, tat, at, weight)
        if smooth.allowed:
            tat = new_tat
        else:
            assert smooth.retry_after_ms is not None
            mine = smooth.retry_after_ms
    excess = sum([pair[1] for pair in log]) + weight - rate.limit
    for stamp, units in log:
        if excess <= 0:
            break
        excess -= units
        if excess <= 0:  # this entry's leaving makes room
            mine = max(mine, log_retry_after(rate, at, stamp))
    return mine, tat


def _check(
    rates: list[WindowRate],
    state: State,
    books: list[_Book],
    gate: GateState,
    at: int,
    now: int,
    weight: int,
) -> tuple[State, Decision]:
    """A request's check against every rate, at ``at`` (the caller's clock: ``now``)."""
    failing, wait = None, 0
    tats, logs = [], []
    for rate, (tat, log) in zip(rates, books, strict=True):
        if weight > burst(rate):
            return state, WindowDecision(failing_rate=rate, gate=gate)  # never fits
        live = _live(rate, log, at)
        mine, tat = _wait(rate, tat, live, at, weight)
        if mine > wait:
            failing, wait = rate, mine
        tats.append(tat)
        logs.append(live)
    if failing is not None:
        # A refused request spends nothing, under any rate. The wait is the caller's.
        return state, WindowDecision(
            failing_rate=failing, retry_after_ms=wait + at - now, gate=gate
        )
    new_books: list[_Book] = []
    for rate, tat, live in zip(rates, tats, logs, strict=True):
        step = grid(rate)
        stamp = -(-at // step) * step  # rounded up: counted longer, never shorter
        if live and live[-1][0] == stamp:
            live[-1][1] += weight
        else:
            live.append([stamp, weight])
        new_books.append((tat, live))
    return _pack(at, new_books, gate), passed(gate)
