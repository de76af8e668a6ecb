"""The short window's step (``_window.SlidingCap.step``) and the gate's operations
(``_gate.operate``) in Lua, for Redis: one script, one round trip, atomic. Tests hold it
to the Python (``tests/test_window.py``'s parity cases). Strictly private."""

from __future__ import annotations

from ._gate import JUMP_MS, KEEP_MS

# step() in Lua, for pyrate-limiter's RedisStateStore: ARGV is now, weight, ttl_ms, n,
# then (limit, interval, burst, grid, emission_us) per rate, then for an operation on
# the gate the operation and its three arguments (GateOp.args()). The state is the same
# integers SQLite keeps, as one MessagePack array (Redis's cmsgpack: a fifth of the cost
# of parsing and formatting text in Lua). Returns {failing rate index, wait ms} and, if
# anything is in the gate or was granted or changed, {..., granted, changed, the gate's
# four values}: index -1 admitted (or the operation applied), -2 paused; a wait of -1
# never fits. Integers up to 2**53 are exact in a Lua double; a tat in epoch microseconds is
# ~1.8e15.
WINDOW_LUA = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local weight = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local t = 5 + 5 * n
-- A check passes no operation (fewer arguments to send).
local op, a, b, c = tonumber(ARGV[t]) or 0, tonumber(ARGV[t + 1]) or 0,
    tonumber(ARGV[t + 2]) or 0, tonumber(ARGV[t + 3]) or 0
-- The caller's clock stepped back this much lately (ms; _window.rebased), if it says.
local step = tonumber(ARGV[t + 4]) or 0

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

-- A clock more than JUMP ms behind the state's latest time stepped back: every time in
-- the state moves back with it (_window.rebased).
local rebased = false
if books.last - now > JUMP then
    local by = now - books.last
    if step > 0 and books.last - step <= now then by = -step end
    for i = 1, n do
        if books[i].tat ~= 0 then books[i].tat = math.max(books[i].tat + by * 1000, 0) end
        for _, pair in ipairs(books[i].log) do pair[1] = pair[1] + by end
    end
    for _, i in ipairs({1, 3, 4}) do
        if gate[i] > 0 then gate[i] = math.max(gate[i] + by, 1) end
    end
    books.last, rebased = books.last + by, true
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

-- Moved back with the clock: kept at once, so even if refused (see _window.step).
if rebased then store(books.last) end

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
    -- Stamped with the time (a step back is told by it), unless nothing is left.
    if rebased or not same() or books.last ~= now then store(now) end
    return reply(-1, 0, granted, changed)
end

if gate[1] > 0 then return reply(-2, gate[1] - caller, 0, 0) end
if n == 0 then
    if rebased or not same() then store(books.last) end
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
""".replace("KEEP", str(KEEP_MS)).replace("JUMP", str(JUMP_MS))

# The state as an array of integers (empty: none, or not ours), for reporting.
READ_LUA = """
local raw = redis.pcall('GET', KEYS[1])
if type(raw) ~= 'string' then return {} end
local ok, values = pcall(cmsgpack.unpack, raw)
if not ok or type(values) ~= 'table' then return {} end
return values
"""
