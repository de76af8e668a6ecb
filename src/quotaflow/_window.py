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
from math import ceil

from pyrate_limiter import GCRA, Rate, SlidingWindowLog
from pyrate_limiter.abstracts.algorithm import ADMITTED, Decision, State, StateAlgorithm

# Requests per window up to which the log is exact (one pair per millisecond at most).
CAP = 64

_GCRA = GCRA()
_LOG = SlidingWindowLog()

# One rate's part of the state: tat, and the log as [stamp, units] pairs, oldest first.
_Book = tuple[int, list[list[int]]]


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
    return max(2 * (rate.interval + grid(rate) + 1) for rate in rates)


def _unpack(rates: Sequence[Rate], state: State) -> tuple[int, list[_Book]]:
    """``last`` and one book per rate; a fresh state if ``state`` is not one for ``rates``
    (another profile's rates, an older layout)."""
    values = list(map(int, state))
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
            return values[0], books
    return 0, [(0, []) for _ in rates]


def _live(rate: Rate, log: list[list[int]], now: int) -> list[list[int]]:
    start = _LOG.window_start(rate, now)  # inclusive
    return [pair for pair in log if pair[0] >= start]


class SlidingCap(StateAlgorithm):
    """Never more than ``limit`` in any ``interval``; at most ``burst`` at once.

    Stateless; ``step`` and the Lua script make the same decisions (tested against
    each other). Strictly private.
    """

    def initial(self, rates: list[Rate]) -> State:
        return (0,) + (0, 0) * len(rates)

    def max_weight(self, rate: Rate) -> int:
        return burst(rate)

    def decode(self, values: Sequence[str]) -> State:
        return tuple(map(int, values))

    def step(
        self, rates: list[Rate], state: State, now: int, weight: int
    ) -> tuple[State, Decision]:
        last, books = _unpack(rates, state)
        at = max(now, last)
        failing, wait = None, 0
        tats, logs = [], []
        for rate, (tat, log) in zip(rates, books, strict=True):
            if weight > burst(rate):
                return state, Decision(failing_rate=rate)  # never fits
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
            return state, Decision(failing_rate=failing, retry_after_ms=wait + at - now)
        new_state = [at]
        for rate, tat, live in zip(rates, tats, logs, strict=True):
            step = grid(rate)
            stamp = -(-at // step) * step  # rounded up: counted longer, never shorter
            if live and live[-1][0] == stamp:
                live[-1][1] += weight
            else:
                live.append([stamp, weight])
            new_state += [tat, len(live)]
            for pair in live:
                new_state += pair
        return tuple(new_state), ADMITTED

    def available(self, rates: list[Rate], state: State, now: int) -> int:
        """How many requests would be admitted at ``now``, one after another (reporting)."""
        last, books = _unpack(rates, state)
        at = max(now, last)
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
        return [
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


# step() in Lua, for pyrate-limiter's RedisStateStore: ARGV is now, weight, ttl_ms, n,
# then (limit, interval, burst, grid, emission_us) per rate. The state is the same
# integers SQLite keeps, as one MessagePack array (Redis's cmsgpack: a fifth of the
# cost of parsing and formatting text in Lua). Returns {failing rate index, wait ms}:
# {-1, 0} admitted, a wait of -1 never fits. Integers up to 2**53 are exact in a Lua
# double; a tat in epoch microseconds is ~1.8e15.
_LUA = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local weight = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local n = tonumber(ARGV[4])

local function parse(raw)
    local ok, values = pcall(cmsgpack.unpack, raw)
    if not ok or type(values) ~= 'table' or #values < 1 then return nil end
    for i = 1, #values do
        if type(values[i]) ~= 'number' then return nil end
    end
    local books, at = {last = values[1]}, 2
    for i = 1, n do
        if at + 1 > #values then return nil end
        local count = values[at + 1]
        local stop = at + 2 + 2 * count
        if count < 0 or stop - 1 > #values then return nil end
        local log = {}
        for j = at + 2, stop - 1, 2 do
            log[#log + 1] = {values[j], values[j + 1]}
        end
        books[i] = {tat = values[at], log = log}
        at = stop
    end
    if at ~= #values + 1 then return nil end
    return books
end

-- Nothing, or another type under the key (an older version's hash: GET answers an
-- error), reads as a fresh state.
local books, raw = nil, redis.pcall('GET', key)
if type(raw) == 'string' then books = parse(raw) end
if books == nil then
    books = {last = 0}
    for i = 1, n do books[i] = {tat = 0, log = {}} end
end

-- Time never goes back for the state; the wait is still the caller's.
local caller = now
if books.last > now then now = books.last end

local worst, wait = -1, 0
local now_us = now * 1000
for i = 1, n do
    local o = 5 + (i - 1) * 5
    local limit, interval = tonumber(ARGV[o]), tonumber(ARGV[o + 1])
    local burst, emission = tonumber(ARGV[o + 2]), tonumber(ARGV[o + 4])
    if weight > burst then return {i - 1, -1} end
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
if worst >= 0 then return {worst, wait + now - caller} end

local out = {now}
for i = 1, n do
    local o = 5 + (i - 1) * 5
    local step = tonumber(ARGV[o + 3])
    local book = books[i]
    local live = book.live
    local stamp = math.ceil(now / step) * step
    if #live > 0 and live[#live][1] == stamp then
        live[#live][2] = live[#live][2] + weight
    else
        live[#live + 1] = {stamp, weight}
    end
    out[#out + 1] = book.tat
    out[#out + 1] = #live
    for j = 1, #live do
        out[#out + 1] = live[j][1]
        out[#out + 1] = live[j][2]
    end
end
redis.call('SET', key, cmsgpack.pack(out), 'PX', ttl)
return {-1, 0}
"""

# The state as an array of integers (empty: none, or not ours), for reporting.
READ_LUA = """
local raw = redis.pcall('GET', KEYS[1])
if type(raw) ~= 'string' then return {} end
local ok, values = pcall(cmsgpack.unpack, raw)
if not ok or type(values) ~= 'table' then return {} end
return values
"""
