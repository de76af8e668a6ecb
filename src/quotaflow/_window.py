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

After the books, while any of it matters, comes the *gate*: what every process on
the state must respect besides the rates::

    pause, failures, opened, probe, -1

``pause``: nobody sends before it (an API's 429 with ``Retry-After``; it only ever
moves later). ``failures``: upstream failures in a row, all processes together;
``opened``: the circuit breaker is open until then, after which one ``probe`` may go
(the probe's lease runs until ``probe``, which is also its token). Old layouts have no
gate, and a quiet profile's state drops it again, so they read as before. The gate is
odd-length and ends with -1 (a book is even-length and never negative), so it is never
mistaken for a rate's book, whatever rates read the state.

Besides the check (``SlidingCap()``), the algorithm applies the gate's operations
(``SlidingCap.hold(...)``, ``.probe``, ``.fail``, ``.succeed``, ``.forget``) in the
same atomic step, so the pause and the breaker cost no round trip of their own on the
way in: every check answers with the gate as it stands (``Verdict.gate``).

Times are integer milliseconds, as pyrate-limiter's. A request stamped ``t`` counts
while ``now - interval <= t`` (inclusive, as pyrate-limiter's ``SlidingWindowLog``):
with stamps truncated to the millisecond, two real times less than ``per`` apart are
then always counted together. The price is one millisecond per window: a full
window's oldest request leaves at ``t + interval + 1``.

A check runs at ``max(now, last)``: time never goes back for the state. A process
reads its clock before it gets the store's lock, so another may have checked at a
later time meanwhile (and dropped entries that had left *its* window); the late one is
judged at that later time, which has passed anyway. A wait is still measured from the
caller's own ``now``. (Machines sharing Redis need synchronised clocks, as for any
limiter keyed on time.)

Strictly private.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import ceil
from typing import NamedTuple

from pyrate_limiter import GCRA, Rate, SlidingWindowLog
from pyrate_limiter.abstracts.algorithm import Decision, State, StateAlgorithm

# Requests per window up to which the log is exact (one pair per millisecond at most).
CAP = 64

_GCRA = GCRA()
_LOG = SlidingWindowLog()

# One rate's part of the state: tat, and the log as [stamp, units] pairs, oldest first.
_Book = tuple[int, list[list[int]]]

# The gate's last value; its length with it.
GATE_MARK = -1
_GATE_LEN = 5
# In Redis a state holding a gate is kept this long past the last of its times (pause,
# opening, probe lease) and its last write, whatever the rates need: a failure count
# on its own is forgotten an hour after the last request that wrote the state.
KEEP_MS = 3_600_000

# The operations (CHECK is the limiter's own), and what FAIL and SUCCEED changed.
CHECK, HOLD, PROBE, FAIL, SUCCEED, FORGET = range(6)
OPENED, CLOSED = 1, 2


class Gate(NamedTuple):
    """The shared pause and circuit, as a check or an operation left them (ms)."""

    pause: int = 0  # nobody sends before this (0: no pause)
    failures: int = 0  # upstream failures in a row, every process together
    opened: int = 0  # the circuit is open until this, then half-open (0: closed)
    probe: int = 0  # the probe's lease runs until this; also its token (0: none)


NO_GATE = Gate()

# A refusal because of the pause names this instead of one of the rates.
PAUSED = Rate(1, 1)


@dataclass(frozen=True)
class Verdict(Decision):
    """A ``Decision`` that also tells the gate as it stands after the step.

    ``granted``: for a probe request, the token of the lease this caller now holds
    (0: not granted). ``changed``: OPENED or CLOSED when this operation changed the
    circuit (0: it did not). Strictly private.
    """

    gate: Gate = NO_GATE
    granted: int = 0
    changed: int = 0


# Admitted, nothing in the gate: the common answer, allocated once.
PASSED = Verdict()


def passed(gate: Gate) -> Verdict:
    return PASSED if gate == NO_GATE else Verdict(gate=gate)


def grid(rate: Rate) -> int:
    """Milliseconds a log stamp is rounded up to: 1 (exact) up to ``CAP`` per window."""
    return 1 if rate.limit <= CAP else ceil(rate.interval / CAP)


def burst(rate: Rate) -> int:
    # A burst above the limit could never be spent: the cap stops it first.
    return min(rate.burst, rate.limit)


def ttl_ms(rates: Sequence[Rate]) -> int:
    """How long an idle key's state still matters, doubled (for stores that expire it).

    A stamp is at most one grid step ahead of the last check and counts for
    ``interval + 1`` ms more; the GCRA's tat is at most ``burst * emission <= interval``
    ahead.
    """
    return max((2 * (rate.interval + grid(rate) + 1) for rate in rates), default=1)


def _split(values: list[int]) -> tuple[list[int], Gate]:
    """The books' values and the gate (none: ``NO_GATE``)."""
    if len(values) > _GATE_LEN and values[-1] == GATE_MARK:
        gate = values[-_GATE_LEN:-1]
        if min(gate) >= 0:
            return values[:-_GATE_LEN], Gate(*gate)
    return values, NO_GATE


def _unpack(rates: Sequence[Rate], state: State) -> tuple[int, list[_Book], Gate]:
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


def _pack(last: int, books: Sequence[_Book], gate: Gate) -> State:
    out = [last]
    for tat, log in books:
        out += [tat, len(log)]
        for pair in log:
            out += pair
    if gate != NO_GATE:
        out += [*gate, GATE_MARK]
    return tuple(out)


def _settled(gate: Gate, at: int) -> Gate:
    """Without a pause that has passed."""
    return gate._replace(pause=0) if 0 < gate.pause <= at else gate


def _operate(gate: Gate, at: int, op: int, a: int, b: int, c: int) -> Verdict:
    """One operation on the gate, at ``at``: see ``SlidingCap``'s constructors."""
    pause, failures, opened, probe = gate
    granted = changed = 0
    if op == HOLD:
        if a > at:
            pause = max(pause, a)
    elif op == PROBE:
        if opened and at >= opened and probe <= at:
            probe = granted = at + max(a, 1)
    elif op == FAIL:
        failures += 1
        if c and probe == c:  # the probe failed: another cool-down
            opened, probe = max(at + b, 1), 0
        elif not opened and failures >= a:
            opened, probe, changed = max(at + b, 1), 0, OPENED
    elif op == SUCCEED:
        changed = CLOSED if opened else 0
        failures = opened = probe = 0
    elif op == FORGET and a and probe == a:
        probe = 0
    return Verdict(gate=Gate(pause, failures, opened, probe), granted=granted, changed=changed)


def _live(rate: Rate, log: list[list[int]], now: int) -> list[list[int]]:
    start = _LOG.window_start(rate, now)  # inclusive
    return [pair for pair in log if pair[0] >= start]


class SlidingCap(StateAlgorithm):
    """Never more than ``limit`` in any ``interval``; at most ``burst`` at once; and
    nothing while the gate's pause runs.

    ``SlidingCap()`` checks a request; the class methods build the gate's operations,
    applied with the same ``store.check(...)`` (weight ignored, books kept as they are).
    Keeps no state of its own; ``step`` and the Lua script make the same decisions
    (tested against each other). Strictly private.
    """

    def __init__(self, op: int = CHECK, a: int = 0, b: int = 0, c: int = 0) -> None:
        self.op = (op, a, b, c)

    @classmethod
    def hold(cls, until: int) -> SlidingCap:
        """Pause everyone until ``until`` (ms), unless a later pause already holds."""
        return cls(HOLD, until)

    @classmethod
    def probe(cls, lease: int) -> SlidingCap:
        """Take the probe of a half-open circuit for ``lease`` ms, if nobody holds it."""
        return cls(PROBE, lease)

    @classmethod
    def fail(cls, threshold: int, cooldown: int, token: int) -> SlidingCap:
        """One more failure: open for ``cooldown`` ms at ``threshold`` in a row, or at
        once if this was the probe holding ``token`` (0: not the probe)."""
        return cls(FAIL, threshold, cooldown, token)

    @classmethod
    def succeed(cls) -> SlidingCap:
        """Upstream answered: no failures in a row, the circuit closed."""
        return cls(SUCCEED)

    @classmethod
    def forget(cls, token: int) -> SlidingCap:
        """The probe holding ``token`` never reached upstream: free its lease."""
        return cls(FORGET, token)

    def initial(self, rates: list[Rate]) -> State:
        return (0,) + (0, 0) * len(rates)

    def max_weight(self, rate: Rate) -> int:
        return burst(rate)

    def decode(self, values: Sequence[str]) -> State:
        return tuple(map(int, values))

    def step(
        self, rates: list[Rate], state: State, now: int, weight: int
    ) -> tuple[State, Decision]:
        last, books, gate = _unpack(rates, state)
        at = max(now, last)
        gate = _settled(gate, at)
        op, a, b, c = self.op
        if op != CHECK:
            verdict = _operate(gate, at, op, a, b, c)
            return _pack(last, books, verdict.gate), verdict
        if gate.pause:
            return state, Verdict(failing_rate=PAUSED, retry_after_ms=gate.pause - now, gate=gate)
        if not rates:
            return _pack(last, books, gate), passed(gate)
        failing, wait = None, 0
        tats, logs = [], []
        for rate, (tat, log) in zip(rates, books, strict=True):
            if weight > burst(rate):
                return state, Verdict(failing_rate=rate, gate=gate)  # never fits
            mine = 0
            if burst(rate) < rate.limit:
                (new_tat,), smooth = _GCRA.step([rate], (tat,), at, weight)
                if smooth.allowed:
                    tat = int(new_tat)
                else:
                    assert smooth.retry_after_ms is not None
                    mine = smooth.retry_after_ms
            live = _live(rate, log, at)
            excess = sum([pair[1] for pair in live]) + weight - rate.limit
            for stamp, units in live:
                if excess <= 0:
                    break
                excess -= units
                if excess <= 0:  # this entry's leaving makes room
                    mine = max(mine, _LOG.retry_after(rate, at, stamp))
            if mine > wait:
                failing, wait = rate, mine
            tats.append(tat)
            logs.append(live)
        if failing is not None:
            # A refused request spends nothing, under any rate. The wait is the caller's.
            return state, Verdict(failing_rate=failing, retry_after_ms=wait + at - now, gate=gate)
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

    def available(self, rates: list[Rate], state: State, now: int) -> int:
        """How many requests would be admitted at ``now``, one after another (reporting)."""
        last, books, gate = _unpack(rates, state)
        at = max(now, last)
        if _settled(gate, at).pause:
            return 0
        found = None
        for rate, (tat, log) in zip(rates, books, strict=True):
            room = rate.limit - sum(units for _, units in _live(rate, log, at))
            if burst(rate) < rate.limit:
                room = min(room, burst(rate) - _GCRA.consumed([rate], (tat,), at))
            found = room if found is None else min(found, room)
        return max(found or 0, 0)

    def consumed(self, rates: list[Rate], state: State, now: int) -> int:
        return max(rate.limit for rate in rates) - self.available(rates, state, now)

    def redis_script(self) -> str:
        return _LUA

    def redis_args(self, rates: list[Rate]) -> list[int | float]:
        args: list[int | float] = [
            value
            for rate in rates
            for value in (
                rate.limit,
                rate.interval,
                burst(rate),
                grid(rate),
                _GCRA._emission_us(rate),
            )
        ]
        # A check sends no operation: four arguments fewer on every request.
        return args if self.op[0] == CHECK else args + list(self.op)


# step() in Lua, for pyrate-limiter's RedisStateStore: ARGV is now, weight, ttl_ms, n,
# then (limit, interval, burst, grid, emission_us) per rate, then for an operation on
# the gate the operation and its three arguments (SlidingCap.op). The state is the same
# integers SQLite keeps, as one MessagePack array (Redis's cmsgpack: a fifth of the cost
# of parsing and formatting text in Lua). Returns {failing rate index, wait ms} and, if
# anything is in the gate or was granted or changed, {..., granted, changed, the gate's
# four values}: index -1 admitted (or the operation applied), -2 paused; a wait of -1
# never fits. Integers up to 2**53 are exact in a Lua double; a tat in epoch microseconds is
# ~1.8e15.
_LUA = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local weight = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local t = 5 + 5 * n
-- A check passes no operation (fewer arguments to send).
local op, a, b, c = tonumber(ARGV[t]) or 0, tonumber(ARGV[t + 1]) or 0,
    tonumber(ARGV[t + 2]) or 0, tonumber(ARGV[t + 3]) or 0

local function numbers(raw)
    local ok, values = pcall(cmsgpack.unpack, raw)
    if not ok or type(values) ~= 'table' then return nil end
    for i = 1, #values do
        if type(values[i]) ~= 'number' then return nil end
    end
    return values
end

local function parse(values, count)
    if count < 1 then return nil end
    local books, at = {last = values[1]}, 2
    for i = 1, n do
        if at + 1 > count then return nil end
        local pairs_ = values[at + 1]
        local stop = at + 2 + 2 * pairs_
        if pairs_ < 0 or stop - 1 > count then return nil end
        local log = {}
        for j = at + 2, stop - 1, 2 do
            log[#log + 1] = {values[j], values[j + 1]}
        end
        books[i] = {tat = values[at], log = log}
        at = stop
    end
    if at ~= count + 1 then return nil end
    return books
end

-- Nothing, or another type under the key (an older version's hash: GET answers an
-- error), reads as a fresh state. The gate is read apart from the books: it survives
-- a change of rates.
local gate, old, books = {0, 0, 0, 0}, {0, 0, 0, 0}, nil
local raw = redis.pcall('GET', key)
if type(raw) == 'string' then
    local values = numbers(raw)
    if values ~= nil then
        local count = #values
        if count > 5 and values[count] == -1 then
            local found = {values[count - 4], values[count - 3], values[count - 2],
                values[count - 1]}
            if math.min(found[1], found[2], found[3], found[4]) >= 0 then
                gate, count = found, count - 5
            end
        end
        books = parse(values, count)
    end
end
if books == nil then
    books = {last = 0}
    for i = 1, n do books[i] = {tat = 0, log = {}} end
end

-- Time never goes back for the state; the wait is still the caller's.
local caller = now
if books.last > now then now = books.last end
for i = 1, 4 do old[i] = gate[i] end
if gate[1] <= now then gate[1] = 0 end

-- Nothing in the gate, nothing granted or changed (the common answer): two values, as
-- few to parse for a client without hiredis.
local function reply(index, wait, granted, changed)
    if granted == 0 and changed == 0 and gate[1] == 0 and gate[2] == 0 and gate[3] == 0
        and gate[4] == 0 then
        return {index, wait}
    end
    return {index, wait, granted, changed, gate[1], gate[2], gate[3], gate[4]}
end

-- The state back, books and gate, if anything changed.
local function store(last)
    local out = {last}
    for i = 1, n do
        local log = books[i].log
        out[#out + 1] = books[i].tat
        out[#out + 1] = #log
        for j = 1, #log do
            out[#out + 1] = log[j][1]
            out[#out + 1] = log[j][2]
        end
    end
    local keep = ttl
    if gate[1] > 0 or gate[2] > 0 or gate[3] > 0 or gate[4] > 0 then
        for i = 1, 4 do out[#out + 1] = gate[i] end
        out[#out + 1] = -1
        keep = math.max(ttl, math.max(gate[1], gate[3], gate[4], caller) - caller + KEEP)
    elseif n == 0 then
        redis.call('DEL', key)  -- nothing left that matters
        return
    end
    redis.call('SET', key, cmsgpack.pack(out), 'PX', keep)
end

local function same()
    for i = 1, 4 do
        if gate[i] ~= old[i] then return false end
    end
    return true
end

if op ~= 0 then
    local granted, changed = 0, 0
    if op == 1 then
        if a > now and a > gate[1] then gate[1] = a end
    elseif op == 2 then
        if gate[3] > 0 and now >= gate[3] and gate[4] <= now then
            gate[4] = now + math.max(a, 1)
            granted = gate[4]
        end
    elseif op == 3 then
        gate[2] = gate[2] + 1
        if c ~= 0 and gate[4] == c then
            gate[3], gate[4] = math.max(now + b, 1), 0
        elseif gate[3] == 0 and gate[2] >= a then
            gate[3], gate[4], changed = math.max(now + b, 1), 0, 1
        end
    elseif op == 4 then
        if gate[3] > 0 then changed = 2 end
        gate[2], gate[3], gate[4] = 0, 0, 0
    elseif op == 5 then
        if a ~= 0 and gate[4] == a then gate[4] = 0 end
    end
    if not same() then store(books.last) end
    return reply(-1, 0, granted, changed)
end

if gate[1] > 0 then return reply(-2, gate[1] - caller, 0, 0) end
if n == 0 then
    if not same() then store(books.last) end
    return reply(-1, 0, 0, 0)
end

local worst, wait = -1, 0
local now_us = now * 1000
for i = 1, n do
    local o = 5 + (i - 1) * 5
    local limit, interval = tonumber(ARGV[o]), tonumber(ARGV[o + 1])
    local burst, emission = tonumber(ARGV[o + 2]), tonumber(ARGV[o + 4])
    if weight > burst then return reply(i - 1, -1, 0, 0) end
    local book, mine = books[i], 0
    if burst < limit then
        -- pyrate-limiter's GCRA.step, for one rate
        local tat = book.tat
        if now_us > tat then tat = now_us end
        local new_tat = tat + weight * emission
        local allow_at = new_tat - burst * emission
        if allow_at > now_us then
            mine = math.ceil((allow_at - now_us) / 1000)
        else
            book.tat = new_tat
        end
    end
    local live, count, start = {}, 0, now - interval
    for _, pair in ipairs(book.log) do
        if pair[1] >= start then
            live[#live + 1] = pair
            count = count + pair[2]
        end
    end
    local excess = count + weight - limit
    for _, pair in ipairs(live) do
        if excess <= 0 then break end
        excess = excess - pair[2]
        if excess <= 0 then
            local leaves = pair[1] + interval - now + 1
            if leaves > mine then mine = leaves end
        end
    end
    if mine > wait then worst, wait = i - 1, mine end
    book.live = live
end
if worst >= 0 then return reply(worst, wait + now - caller, 0, 0) end

for i = 1, n do
    local o = 5 + (i - 1) * 5
    local step = tonumber(ARGV[o + 3])
    local live = books[i].live
    local stamp = math.ceil(now / step) * step
    if #live > 0 and live[#live][1] == stamp then
        live[#live][2] = live[#live][2] + weight
    else
        live[#live + 1] = {stamp, weight}
    end
    books[i].log = live
end
store(now)
return reply(-1, 0, 0, 0)
""".replace("KEEP", str(KEEP_MS))

# The state as an array of integers (empty: none, or not ours), for reporting.
READ_LUA = """
local raw = redis.pcall('GET', KEYS[1])
if type(raw) ~= 'string' then return {} end
local ok, values = pcall(cmsgpack.unpack, raw)
if not ok or type(values) ~= 'table' then return {} end
return values
"""


def gate_of(state: State, now: int) -> Gate:
    """The gate a stored state holds at ``now`` (ms), for reporting: decoded as a check
    decodes it, a pause that has passed dropped; ``NO_GATE`` for a state without one (an
    older layout, a quiet profile). Reads only; the state may be any rates'."""
    values, gate = _split(list(map(int, state)))
    return _settled(gate, max(now, values[0] if values else 0))
