"""The Redis ledger's one script (issue 16): a reservation with the short window's step
(the pause and the circuit with it) and the single-flight lease, or a settle with the
lease's landing, in one round trip. Strictly private.

The books' rules stay in Python (``_books``), so the script is a compare-and-set: it is
sent the books as this process last saw them and what the change makes of them, and
writes only if Redis still holds exactly those books (every field of both hashes, the
ledger's presence key, a journal entry's mark). Otherwise it writes nothing and answers
what Redis holds, and the change runs again on that, as a WATCH that failed would.
Within one process the books last seen are the books stored: one round trip a change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from ._backend import LeaseStep
from ._journal import REPLAYED_KEEP
from ._lua import WINDOW_LUA

# How long a call's mark (``Step.once_only``) outlives it: longer than redis-py's tries
# to send it again (connect timeouts and backoff, a few seconds).
MARK_MS = 30_000

# KEYS: the row's hash, the reservations' hash, the ledger's presence key, then a
# journal entry's mark (ARGV[2] is 1), the lease (ARGV[3]: 1 take, 2 land, 3 only see
# that no other holds it), the short window's state (a window step is sent) and the
# call's own mark (ARGV[7] is 1), in that order. ARGV: whether the books are expected
# (else the script only reads them), once, lease mode, token, the lease's milliseconds,
# the caller's clock (ms), marked; expected (if
# any): the row's pairs, the reservations' pairs (each a count first), present and
# replayed (0/1); then the writes: pairs to set and fields to delete in the row's hash,
# the same in the reservations' hash, set the entry's mark, set the presence key; then
# the window step's arguments (a count first, see WINDOW_LUA). Answers {'held'} (another
# holds the lease: nothing written), {'stale', row, inflight, present, replayed}
# (nothing written), or {'ok'[, the window's reply]}. The window's step runs in pcall:
# an error there leaves the ledger's change standing and its reply unread (the wait
# room then checks, as without the join).
#
# A landed lease (``_leasing``) is "token|lapses": it lapses on the caller's clock, as
# on SQLite (what the waiters' clocks judge it by, see ``RedisLeases.held``), and on
# Redis's own (PEXPIRE): whichever comes first.
# A lease's holder, and when it lapses on the holder's clock if it was landed.
LANDED_LUA = """
local function landed(value)
    if not value then return nil end
    local bar = string.find(value, '|', 1, true)
    if not bar then return value end
    return string.sub(value, 1, bar - 1), tonumber(string.sub(value, bar + 1))
end
"""

_BOOKS_LUA = """
local at = 0
local function arg()
    at = at + 1
    return ARGV[at]
end
local expect, once, mode = arg() == '1', arg() == '1', tonumber(arg())
local token, ms, now = arg(), tonumber(arg()), tonumber(arg())
local mark = arg() == '1' and KEYS[#KEYS]
LANDED
-- This very call ran before (redis-py sent it again after losing its reply): written.
if mark and redis.call('EXISTS', mark) == 1 then return {'ok'} end
local k = 4
local done, lease
if once then done, k = KEYS[k], k + 1 end
if mode ~= 0 then lease, k = KEYS[k], k + 1 end
if mode == 1 or mode == 3 then
    local holder, lapses = landed(redis.call('GET', lease))
    if holder and holder ~= token and not (lapses and lapses <= now) then
        return {'held'}
    end
end
local row = redis.call('HGETALL', KEYS[1])
local inflight = redis.call('HGETALL', KEYS[2])
local present = redis.call('EXISTS', KEYS[3])
local replayed = 0
if once then replayed = redis.call('EXISTS', done) end

-- Whether the next pairs of ARGV (a count first) are exactly the hash's fields.
local function same(flat)
    local n, have, ok = tonumber(arg()), {}, true
    for i = 1, #flat, 2 do have[flat[i]] = flat[i + 1] end
    if #flat ~= 2 * n then ok = false end
    for _ = 1, n do
        local field, value = arg(), arg()
        if have[field] ~= value then ok = false end
    end
    return ok
end

local fresh = false
if expect then
    local a, b = same(row), same(inflight)
    local p, r = tonumber(arg()), tonumber(arg())
    fresh = a and b and p == present and r == replayed
end
if not fresh then return {'stale', row, inflight, present, replayed} end

local function put(key)
    local n, t = tonumber(arg()), {}
    for i = 1, 2 * n do t[i] = arg() end
    if n > 0 then redis.call('HSET', key, unpack(t)) end
end
local function drop(key)
    local n, t = tonumber(arg()), {}
    for i = 1, n do t[i] = arg() end
    if n > 0 then redis.call('HDEL', key, unpack(t)) end
end
if mark then redis.call('SET', mark, 1, 'PX', MARK_MS) end
put(KEYS[1])
drop(KEYS[1])
put(KEYS[2])
drop(KEYS[2])
if arg() == '1' then redis.call('SET', done, 1, 'EX', KEEP) end
if arg() == '1' then redis.call('SET', KEYS[3], 1) end
if mode == 1 then
    redis.call('SET', lease, token, 'PX', ms)
elseif mode == 2 and landed(redis.call('GET', lease)) == token then
    local left = redis.call('PTTL', lease)  -- landing never lengthens a lease
    if left > 0 and left < ms then ms = left end
    redis.call('SET', lease, token .. '|' .. (now + ms), 'PX', ms)
end
local n = tonumber(arg()) or 0
if n == 0 then return {'ok'} end
local step = {}
for i = 1, n do step[i] = arg() end
local ok, reply = pcall(window, {KEYS[k]}, step)
if ok then return {'ok', reply} end
return {'ok'}
"""
_BOOKS_LUA = _BOOKS_LUA.replace("KEEP", str(REPLAYED_KEEP)).replace("MARK_MS", str(MARK_MS))
_BOOKS_LUA = _BOOKS_LUA.replace("LANDED", LANDED_LUA)

BOOKS_LUA = f"local function window(KEYS, ARGV)\n{WINDOW_LUA}\nend\n{_BOOKS_LUA}"


@attrs.define
class Seen:
    """The books' hashes as Redis held them (as text), as this process last saw them."""

    row: dict[str, str]
    inflight: dict[str, str]
    present: bool
    replayed: bool = False


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


def seen_of(reply: list[Any]) -> Seen:
    """What a ``stale`` answer says Redis holds."""
    _, row, inflight, present, replayed = reply
    return Seen(_pairs(row), _pairs(inflight), bool(present), bool(replayed))


def holds(value: bytes | str | None, now: float) -> bool:
    """Whether a lease's value (None: none) holds it at ``now`` (the caller's clock): a
    landed lease lapses at the time it names, if Redis has not expired it first. A time
    not written so (ASCII digits) names none, as the script's ``tonumber`` finds."""
    if value is None:
        return False
    _, bar, lapses = _text(value).partition("|")
    named = lapses.isascii() and lapses.isdigit()
    return not bar or not named or int(lapses) > now * 1000


def _flat(values: Mapping[str, str]) -> list[str]:
    return [str(len(values)), *(part for pair in values.items() for part in pair)]


class Step:
    """One call of the script being put together: its keys and arguments."""

    def __init__(self, quota: str, inflight: str, present: str) -> None:
        self.keys = [quota, inflight, present]
        self.head: list[Any] = ["0", "0", 0, "", 0, 0, "0"]
        self.mark = ""
        self.body: list[Any] = []
        self.window: list[Any] = ["0"]
        self.reply: Any = None  # the window step's, once the call wrote

    def once(self, done: str) -> None:
        self.keys.append(done)
        self.head[1] = "1"

    def lease(self, key: str, step: LeaseStep, check: bool = False) -> None:
        """The lease taken (only checked: ``check``) or landed (nothing: ``check``)."""
        mode = (3 if check else 1) if step.take else (0 if check else 2)
        if mode:
            self.keys.append(key)
            ms = max(1, round(step.seconds * 1000))
            self.head[2:6] = [mode, step.token, ms, math.floor(step.now * 1000)]

    def expect(self, seen: Seen) -> None:
        """Write only if Redis holds ``seen`` (else only read)."""
        self.head[0] = "1"
        self.body = [*_flat(seen.row), *_flat(seen.inflight), int(seen.present)]
        self.body.append(int(seen.replayed))

    def write(
        self, row: tuple[dict[str, str], list[str]], inflight: tuple[dict[str, str], list[str]]
    ) -> None:
        """The hashes' changes: (fields to set, fields to delete) each."""
        for put, drop in (row, inflight):
            self.body += _flat(put)
            self.body += [str(len(drop)), *drop]

    def marks(self, *, done: bool, present: bool) -> None:
        self.body += [int(done), int(present)]

    def evalsha(self, sha: str, numkeys: int, key: str, *args: Any) -> None:
        """The short window's step joined to the call (``_WindowStore.queue``; the sha
        is its own script's, unused: the step runs inside this one)."""
        self.keys.append(key)
        self.window = [str(len(args)), *args]

    def once_only(self, key: str) -> None:
        """The call marked (``key``, unique to it) when it writes: sent again by
        redis-py after its reply was lost (a dropped connection), it writes nothing more
        (the books it expects are gone by then, and the change would run again on the
        books it made: a settle counted twice)."""
        self.mark = key
        self.head[6] = "1"

    def arguments(self) -> list[Any]:
        return [*self.head, *self.body, *(self.window if self.head[0] == "1" else [])]

    def all_keys(self) -> list[str]:
        return [*self.keys, *([self.mark] if self.mark else [])]
