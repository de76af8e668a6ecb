"""The cold store (``_cold``) in Redis: keys without TTL under ``{prefix}:cold:``, shared
by every machine on the prefix; each operation one Lua script. Strictly private."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
from collections.abc import Collection
from typing import cast

import httpx
import redis
from redis.typing import EncodableT

from .._cold import ColdEntry, ColdStats, ColdStore, kept_headers

logger = logging.getLogger("quotaflow")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# The cold store's scripts. An entry's removal also updates its profile's figures; the
# evicted entries' keys are derived in the script from ARGV's prefix (a single Redis,
# not a cluster, as everywhere in this backend).
_COLD_DROP = """
local function drop(prefix, key, lru, size, stats)
  local found = redis.call('HMGET', prefix .. key, 'size', 'profile')
  if found[1] then
    redis.call('DECRBY', size, found[1])
    redis.call('HINCRBY', stats, 'entries:' .. found[2], -1)
    redis.call('HINCRBY', stats, 'bytes:' .. found[2], -tonumber(found[1]))
  end
  redis.call('DEL', prefix .. key)
  redis.call('ZREM', lru, key)
end
"""
# KEYS: lru, seq, size, stats, window (or lru again: none). ARGV: prefix, key, max_bytes,
# then the entry's fields: profile, status, headers, body, size, cost, stored, expires;
# then the window's start and member ("" for none).
_COLD_PUT = (
    _COLD_DROP
    + """
local lru, seq, size, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, key, max = ARGV[1], ARGV[2], tonumber(ARGV[3])
drop(prefix, key, lru, size, stats)
redis.call('HSET', prefix .. key, 'profile', ARGV[4], 'status', ARGV[5], 'headers', ARGV[6],
  'body', ARGV[7], 'size', ARGV[8], 'cost', ARGV[9], 'stored', ARGV[10], 'expires', ARGV[11])
redis.call('ZADD', lru, redis.call('INCR', seq), key)
redis.call('HINCRBY', stats, 'entries:' .. ARGV[4], 1)
redis.call('HINCRBY', stats, 'bytes:' .. ARGV[4], ARGV[8])
local total = redis.call('INCRBY', size, ARGV[8])
if ARGV[13] ~= '' then redis.call('ZADD', KEYS[5], ARGV[12], ARGV[13]) end
while total > max do
  local oldest = redis.call('ZRANGE', lru, 0, 0)
  if #oldest == 0 then break end
  drop(prefix, oldest[1], lru, size, stats)
  total = tonumber(redis.call('GET', size) or '0')
end
return total
"""
)
# KEYS: lru, seq, size, stats. ARGV: prefix, key, touch ("1"/"0"): the entry's fields,
# the hit counted; an expired one removed (ARGV[4]: now).
_COLD_GET = (
    _COLD_DROP
    + """
local lru, seq, size, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local prefix, key = ARGV[1], ARGV[2]
local f = redis.call('HMGET', prefix .. key, 'profile', 'status', 'headers', 'body', 'cost',
  'stored', 'expires')
if not f[1] then return nil end
if f[7] ~= '' and tonumber(f[7]) <= tonumber(ARGV[4]) then
  drop(prefix, key, lru, size, stats)
  return nil
end
if ARGV[3] == '1' then
  redis.call('ZADD', lru, redis.call('INCR', seq), key)
  redis.call('HINCRBY', stats, 'hits:' .. f[1], 1)
  redis.call('HINCRBY', stats, 'saved:' .. f[1], f[5])
end
return f
"""
)


class RedisColdStore(ColdStore):
    """The cold store in Redis keys without a TTL under ``{prefix}:cold:``, shared by
    every machine on the prefix; each operation one script, atomic. Strictly private."""

    def __init__(
        self, client: redis.Redis, prefix: str, max_bytes: int, secrets: Collection[str]
    ) -> None:
        self._client, self.max_bytes, self._secrets = client, max_bytes, secrets
        self._prefix = f"{prefix}:cold"
        self._keys = [f"{self._prefix}:{name}" for name in ("lru", "seq", "size", "stats")]
        self._put = client.register_script(_COLD_PUT)
        self._get = client.register_script(_COLD_GET)
        self._warned = False

    def _failed(self, exc: redis.RedisError) -> None:
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        logger.log(level, "quotaflow: the cold store in Redis failed: %s", exc)

    def _window(self, series: str) -> str:
        return f"{self._prefix}:w:{hashlib.sha256(series.encode()).hexdigest()}"

    def get(self, key: str, now: float, *, touch: bool = True) -> ColdEntry | None:
        try:
            found = self._get(
                keys=self._keys, args=[f"{self._prefix}:e:", key, "1" if touch else "0", now]
            )
        except redis.RedisError as exc:
            self._failed(exc)
            return None
        if not found:
            return None
        _, status, headers, body, _, stored, expires = found
        pairs = tuple((str(name), str(value)) for name, value in json.loads(headers))
        stop = float(expires) if expires not in (b"", "") else None
        return ColdEntry(int(status), pairs, bytes(body), float(stored), stop)

    def find(self, series: str, at: float, now: float, *, touch: bool = True) -> ColdEntry | None:
        window = self._window(series)
        try:
            found = self._client.zrevrangebyscore(window, at, "-inf", start=0, num=1)
        except redis.RedisError as exc:
            self._failed(exc)
            return None
        if not found:
            return None
        member = cast("bytes", found[0])
        end, _, key = _text(member).partition("|")
        if float(end) <= at:
            return None
        entry = self.get(key, now, touch=touch)
        if entry is None:  # evicted: its window goes too
            with contextlib.suppress(redis.RedisError):
                self._client.zrem(window, member)
        return entry

    def put(
        self,
        key: str,
        response: httpx.Response,
        body: bytes,
        *,
        now: float,
        keep_for: float,
        cost: int = 0,
        profile: str = "",
        window: tuple[str, float, float] | None = None,
    ) -> bool:
        size = len(body)
        if size > self.max_bytes or keep_for <= 0:
            return False
        headers = json.dumps(kept_headers(response.headers, self._secrets))
        expires = "" if math.isinf(keep_for) else repr(now + keep_for)
        zset, start, member = self._keys[0], "0", ""
        if window is not None:
            zset, start, member = self._window(window[0]), repr(window[1]), f"{window[2]!r}|{key}"
        fields: list[EncodableT] = [
            profile,
            response.status_code,
            headers,
            body,
            size,
            cost,
            repr(now),
            expires,
        ]
        try:
            self._put(
                keys=[*self._keys, zset],
                args=[f"{self._prefix}:e:", key, self.max_bytes, *fields, start, member],
            )
        except redis.RedisError as exc:
            self._failed(exc)
            return False
        return True

    def profile_stats(self) -> dict[str, ColdStats]:
        try:
            raw = self._client.hgetall(self._keys[3])
        except redis.RedisError as exc:
            self._failed(exc)
            return {}
        figures: dict[str, dict[str, int]] = {}
        for field, value in raw.items():
            name, _, profile = _text(field).partition(":")
            figures.setdefault(profile, {})[name] = int(value)
        return {
            profile: ColdStats(
                found.get("entries", 0),
                found.get("bytes", 0),
                found.get("hits", 0),
                found.get("saved", 0),
            )
            for profile, found in figures.items()
            if any(found.values())
        }
