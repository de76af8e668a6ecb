"""hishel's Redis entries read and written in one round trip each, and a stored
answer's record kept beside it. Strictly private.

hishel 2's ``RedisStorage`` reads an entry in four commands plus one per 128 KiB chunk
(the index, the entry, its ``stream_done``, the list's length, each chunk) and stores
one in about eight (the entry, a transaction per chunk, then WATCH, EXISTS, LLEN, PTTL
and the publishing transaction). The guarded storages (``_async_redis_storage``) keep
its key layout, so its own code reads and removes what they write, and do each in one
script: :data:`LOOKUP_LUA` returns every live entry under a cache key, its chunks
included; :data:`STORE_LUA` writes a whole entry, index and expiry included, as
hishel's publish does, atomically (so nothing half-written is ever visible, which
hishel's WATCH guarded against).

Beside them, per cache key, the store keeps the hit record ``{key_prefix}:hit:{key}``
while the key holds exactly one live entry a plain GET could be served as it is: the
entry's id, then the URL, Content-Length, freshness and headers as a hit restates them
(:func:`quotaflow._shapes.record_of`, worked out once) and the body. A fresh hit is then
one ``GET`` into a response, nothing unpacked or parsed but that record. Every change to
a key's entries keeps it true: the store (:data:`STORE_LUA`) writes it or deletes it,
:data:`REMOVE_LUA` deletes it with its entry, a revalidation rewrites it, and it expires
when its entry leaves the index. A key without one is read by the lookup (hishel's way).

What this relies on of hishel (checked against ``_hishel.CHECKED``, like the rest of
that fence): the key names of ``RedisStorage._data_keys`` and ``_idx_key``; the index
scored by ``expires_at``; its removal (out of the index, the data kept
``soft_delete_ttl``); ``stream_done`` holding ``(chunk count, TTL deadline, TTI, cache
key)`` in MessagePack; the entry packed by ``_packing.pack``; and its helpers
``_limits``, ``_expires_at``, ``_keys_ttl_ms`` and ``_extend_expiry``. Like hishel's,
the scripts reach keys they derive from the index, so they need one Redis, not a
cluster (hishel's transactions span keys of several slots as well).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any, cast

import hishel
import msgpack  # type: ignore[import-untyped]  # hishel's own dependency
from hishel._core._storages._packing import pack, unpack

from .._hot import HotEntry
from .._shapes import Record, record_of, recorded_entry
from ._redis_guard import Guard

__all__ = [
    "LOOKUP_LUA",
    "REMOVE_LUA",
    "RENEW_LUA",
    "STORE_LUA",
    "Found",
    "Store",
    "cache_key",
    "chunked",
    "found_entries",
    "hit_of",
    "missed",
    "record",
    "record_body",
    "unstored",
]

logger = logging.getLogger("quotaflow")

# hishel's STORAGE_CHUNK_SIZE: the chunks its own reader takes one LINDEX each.
CHUNK = 131072

# KEYS: the index. ARGV: now (seconds), the data keys' prefix. Returns per live entry
# {id, expires_at, entry, stream_done, chunks} (false for a key the server evicted).
LOOKUP_LUA = """
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES')
local p = ARGV[2]
local rows = {}
for i = 1, #members, 2 do
  local id = members[i]
  rows[#rows + 1] = {id, members[i + 1], redis.call('GET', p .. 'entry:' .. id),
    redis.call('GET', p .. 'stream_done:' .. id),
    redis.call('LRANGE', p .. 'stream:' .. id, 0, -1)}
end
return rows
"""

# KEYS: entry, stream, stream_done, index, hit record. ARGV: now, expires_at ("+inf":
# never), the data keys' TTL in ms (-1: none), the id (hex), the packed entry,
# stream_done, the hit record ("" for none), its TTL in ms (-1: none), then the chunks.
# hishel's _publish, less what atomicity makes unneeded (the index lives as long as its
# longest-living entry), plus the hit record: kept only while the key has one entry.
STORE_LUA = """
local ttl = tonumber(ARGV[3])
local idx_ttl = redis.call('PTTL', KEYS[4])
local function put(key, value, ms)
  if ms < 0 then redis.call('SET', key, value) else redis.call('SET', key, value, 'PX', ms) end
end
redis.call('DEL', KEYS[2])
if #ARGV >= 9 then
  redis.call('RPUSH', KEYS[2], unpack(ARGV, 9))
  if ttl >= 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
put(KEYS[1], ARGV[5], ttl)
put(KEYS[3], ARGV[6], ttl)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[4])
if ttl < 0 then
  redis.call('PERSIST', KEYS[4])
elseif idx_ttl == -2 or (idx_ttl >= 0 and idx_ttl < ttl) then
  redis.call('PEXPIRE', KEYS[4], ttl)
end
if ARGV[7] ~= '' and redis.call('ZCARD', KEYS[4]) == 1 then
  put(KEYS[5], ARGV[7], tonumber(ARGV[8]))
else
  redis.call('DEL', KEYS[5])
end
return 1
"""

# KEYS: entry, stream, stream_done, index, hit record. ARGV: the id (hex),
# soft_delete_ttl in ms. hishel's remove_entry once its stream_done named the key (Redis
# 7.0's cmsgpack cannot read hishel's MessagePack), the hit record deleted if it is this
# entry's.
REMOVE_LUA = """
redis.call('ZREM', KEYS[4], ARGV[1])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
if redis.call('GETRANGE', KEYS[5], 0, 31) == ARGV[1] then redis.call('DEL', KEYS[5]) end
return 1
"""

# KEYS: entry, hit record. ARGV: the packed entry, the id (hex), its new hit record (""
# for none). hishel's update_headers (never bringing back an entry that expired
# meanwhile), and the record rewritten only if it is still this entry's when written: a
# newer answer's, stored since the record was read, stays.
RENEW_LUA = """
redis.call('SET', KEYS[1], ARGV[1], 'XX', 'KEEPTTL')
if redis.call('GETRANGE', KEYS[2], 0, 31) == ARGV[2] then
  if ARGV[3] == '' then
    redis.call('DEL', KEYS[2])
  else
    redis.call('SET', KEYS[2], ARGV[3], 'KEEPTTL')
  end
end
return 1
"""


def unstored(request: hishel.Request, response: hishel.Response) -> hishel.Entry:
    return hishel.Entry(id=uuid.uuid4(), request=request, response=response)


def missed(guard: Guard) -> None:
    """A lookup Redis could not answer: a miss, or ``StateUnavailable`` (closed)."""
    if guard.fail == "closed":
        raise guard.refusal()


def chunked(body: bytes) -> list[bytes]:
    """``body`` as hishel stores it: chunks of at most CHUNK bytes."""
    return [body[start : start + CHUNK] for start in range(0, len(body), CHUNK)]


def record(id: uuid.UUID, request: hishel.Request, response: hishel.Response, body: bytes) -> bytes:
    """The hit record of an entry (see above), or b"" for an answer no plain GET is
    served as it is (not a 200 with a Content-Length and a max-age anyone may reuse)."""
    found = record_of(request.method, request.url, response.status_code, response.headers)
    return b"" if found is None else id.hex.encode() + msgpack.packb([*found, body])


def hit_of(raw: bytes, resource: str, now: float, max_body: int) -> HotEntry | None:
    """A hit from a hit record, or None (stale, too big, another URL's)."""
    *found, body = msgpack.unpackb(memoryview(raw)[32:], use_list=False)
    return recorded_entry(cast(Record, found), body, resource, now, max_body)


def cache_key(done: bytes) -> str:
    """The cache key an entry's ``stream_done`` names."""
    return cast(bytes, msgpack.unpackb(done)[3]).decode()


def record_body(raw: bytes, id: uuid.UUID) -> bytes | None:
    """The body in the hit record ``raw`` if it is entry ``id``'s."""
    if raw[:32] != id.hex.encode():
        return None
    return cast(bytes, msgpack.unpackb(memoryview(raw)[32:], use_list=False)[-1])


@dataclasses.dataclass
class Store:
    """One entry to write with :data:`STORE_LUA`, its stream read to the end."""

    id: uuid.UUID
    request: hishel.Request
    response: hishel.Response
    key: str
    ttl_deadline: float | None
    tti: float | None

    def args(
        self, body: bytes, now: float, expires_at: float | None, ttl_ms: int | None
    ) -> list[Any]:
        chunks = chunked(body)
        done = msgpack.packb((len(chunks), self.ttl_deadline, self.tti, self.key.encode()))
        # A TTI moves the entry's expiry at each read (hishel's lookup does that): none.
        hit = b"" if self.tti is not None else record(self.id, self.request, self.response, body)
        hit_ms = -1 if expires_at is None else max(1, int((expires_at - now) * 1000))
        return [
            repr(now),
            "+inf" if expires_at is None else repr(expires_at),
            -1 if ttl_ms is None else ttl_ms,
            self.id.hex,
            pack(self.request, self.response),
            done,
            hit,
            hit_ms,
            *chunks,
        ]


@dataclasses.dataclass
class Found:
    """What a lookup's rows hold: the usable entries with their bodies, the index
    members to drop (data evicted or undecodable), the entries whose TTI to extend."""

    entries: list[tuple[hishel.Entry, bytes]]
    dropped: list[bytes]
    extend: list[tuple[uuid.UUID, float]]

    def with_bodies(self, stream: Callable[[Iterable[bytes]], Any]) -> list[hishel.Entry]:
        """The entries, each body one chunk of ``stream`` (hishel's iterator maker)."""
        return [
            dataclasses.replace(
                entry, response=dataclasses.replace(entry.response, stream=stream([body]))
            )
            for entry, body in self.entries
        ]


def found_entries(
    rows: list[Any],
    now: float,
    expires_at: Callable[[float | None, float | None, float], float | None],
) -> Found:
    """hishel's ``_get_entries`` on a lookup's rows (``expires_at``: its helper)."""
    found = Found([], [], [])
    for member, score, data, done, chunks in rows:
        try:
            if data is None or done is None:
                raise LookupError("evicted")
            request, response = unpack(bytes(data))
            count, ttl_deadline, tti, _ = msgpack.unpackb(done)
            if len(chunks) != count:
                raise LookupError("chunks evicted")
        except Exception as exc:
            if not isinstance(exc, LookupError):
                logger.warning("quotaflow: dropping a stored answer that could not be decoded")
            found.dropped.append(member)
            continue
        id_ = uuid.UUID(hex=member.decode())
        new_expires_at = expires_at(ttl_deadline, tti, now)
        expires = float(score)
        if tti is not None and new_expires_at is not None and new_expires_at - expires >= tti / 2:
            found.extend.append((id_, new_expires_at))
        entry = hishel.Entry(id=id_, request=request, response=response)
        found.entries.append((entry, b"".join(chunks)))
    return found
