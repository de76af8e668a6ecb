"""Shared state in Redis, for several processes or machines on one API key.

Imported only when ``redis_url`` is given. Keys, all under the prefix::

    {prefix}:quota:{profile}     hash: period, total, remaining, used (the ledger row)
    {prefix}:inflight:{profile}  hash: ticket id -> "cost:started" (reservations)
    {prefix}:lease:{key}         the holder's token, expiring on its own (SET NX PX)
    {prefix}:rate:{profile}      the short window's state and the gate: the 429 pause and
                                 the circuit breaker (MessagePack; Lua, see _window)
    {prefix}:cache:...           hishel's RedisStorage / AsyncRedisStorage entries
    {prefix}:cold:...            the cold store (``_cold``), no TTL: e:{key} one answer
                                 (hash), lru (zset key -> use sequence), seq, size (bytes
                                 kept), w:{sha256 of series} snapshot windows (zset
                                 "end|key" by start), stats (hash: entries/bytes/hits/
                                 saved per profile)

Failure policy (``redis_fail``):

- Construction PINGs the server. If that fails, ``"closed"`` raises ConfigError
  naming redis_url (password redacted); ``"open"`` logs one warning and returns the
  SQLite backend of the state directory.
- At run time, a connection error or timeout in a ledger, lease or window operation:
  ``"closed"`` raises StateUnavailable (a QuotaflowError, so the fallback layer may
  still serve a stale answer); ``"open"`` runs that operation on a local SQLite
  backend, created on first need with one warning. Either way Redis is left alone for
  RETRY_AFTER seconds, so an outage costs one timeout, not one per operation. Local
  writes are not merged back: a reservation stranded in Redis is charged after
  INFLIGHT_TIMEOUT (an over-count, never an under-count).
- hishel's storages turn Redis errors into cache misses themselves.
- Clients connect within CONNECT_TIMEOUT and wait SOCKET_TIMEOUT for each answer (a
  frozen server, one that accepts connections but never answers, would otherwise block
  a request for ever: with it, the timeout is an outage as above). A command is retried
  twice after a connection error, not redis-py's ten times (minutes on a silent host),
  and never after a timeout. Options in the URL take precedence (the setting:
  ``?socket_timeout=2`` for a slow link).

Strictly private.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import attrs
import hishel
import httpx
import redis
import redis.asyncio
import redis.asyncio.retry
from pyrate_limiter import Decision, Rate, RedisStateStore, StateStore
from pyrate_limiter.abstracts.algorithm import State, StateAlgorithm
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry
from redis.typing import EncodableT

from ._backend import Backend, Leases, SqliteBackend
from ._cold import ColdEntry, ColdStats, ColdStore, kept_headers
from ._credentials import new_key
from ._ledger import Books, Ledger, Row
from ._window import PASSED, PAUSED, READ_LUA, Gate, Verdict, ttl_ms
from .exceptions import ConfigError, StateUnavailable

T = TypeVar("T")
logger = logging.getLogger("quotaflow")

# "Redis is not there", as opposed to a refused command or a bug.
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)
MAX_TRIES = 50  # optimistic transaction attempts before giving up
RETRY_AFTER = 5.0  # seconds a failed Redis is left alone
CONNECT_TIMEOUT = 2.0
# Every command we send is O(1) or a short script; 0.5 s is well above a healthy
# round trip. A timed-out command is not sent again: it may have run (a ledger script
# would count twice), and a frozen server would cost a timeout per try.
SOCKET_TIMEOUT = 0.5
_BACKOFF = ExponentialWithJitterBackoff(cap=0.5, base=0.01)
# Compare-and-delete: only the holder's token releases a lease.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end"


def _options(retry: type[Any]) -> dict[str, Any]:
    return {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": SOCKET_TIMEOUT,
        "retry": retry(_BACKOFF, 2, supported_errors=(redis.ConnectionError,)),
    }


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is not None:
        user, _, host = parts.netloc.rpartition("@")
        parts = parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}")
    return re.sub(r"(?i)(password=)[^&#]*", r"\1***", parts.geturl())


class _Guard:
    """Runs an operation on Redis, else fails closed or carries on locally."""

    def __init__(self, url: str, fail: str, directory: Path) -> None:
        self.url, self.fail, self.directory = redact(url), fail, directory
        self.local: SqliteBackend | None = None
        self._retry_at = 0.0
        self._error: Exception = redis.ConnectionError("unreachable")
        self._lock = threading.Lock()

    def run(self, remote: Callable[[], T], local: Callable[[SqliteBackend], T]) -> T:
        if time.monotonic() >= self._retry_at:
            try:
                return remote()
            except UNREACHABLE as exc:
                self._error, self._retry_at = exc, time.monotonic() + RETRY_AFTER
        if self.fail == "closed":
            raise StateUnavailable(
                f"redis_url {self.url}: shared state unavailable ({self._error})"
            ) from self._error
        with self._lock:
            if self.local is None:
                logger.warning("redis_url %s: %s; using local state", self.url, self._error)
                self.local = SqliteBackend(self.directory)
        return local(self.local)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _encode(row: Row | None) -> dict[str, str]:
    # repr: a float survives the round trip exactly. An unknown ``used`` is no field.
    fields = attrs.asdict(row) if row is not None else {}
    return {name: repr(value) for name, value in fields.items() if value is not None}


def _decode(raw: Mapping[str, str]) -> Row | None:
    try:
        used = None if raw.get("used") is None else int(raw["used"])
        return Row(float(raw["period"]), int(raw["total"]), int(raw["remaining"]), used)
    except (KeyError, ValueError):  # missing, or not ours: start over
        return None


def _changes(new: dict[str, str], old: Mapping[str, str]) -> dict[EncodableT, EncodableT]:
    return {k: v for k, v in new.items() if old.get(k) != v}


def _reservations(raw: Mapping[str, str]) -> dict[str, tuple[int, float]]:
    found: dict[str, tuple[int, float]] = {}
    for key, value in raw.items():
        cost, _, started = value.partition(":")
        with contextlib.suppress(ValueError):  # unreadable: dropped at the next write
            found[key] = (int(cost), float(started))
    return found


class RedisLedger(Ledger):
    """The ledger in two hashes per profile, changed in WATCH/MULTI/EXEC transactions."""

    def __init__(self, client: redis.Redis, prefix: str, guard: _Guard) -> None:
        super().__init__()
        self._client, self._prefix, self._guard = client, prefix, guard

    def _keys(self, name: str) -> tuple[str, str]:
        return f"{self._prefix}:quota:{name}", f"{self._prefix}:inflight:{name}"

    def _hash(self, client: redis.Redis, key: str) -> dict[str, str]:
        return {_text(k): _text(v) for k, v in client.hgetall(key).items()}

    def _peek(self, name: str) -> Row | None:
        return self._guard.run(
            lambda: _decode(self._hash(self._client, self._keys(name)[0])),
            lambda local: local.ledger._peek(name),
        )

    def accounts(self) -> list[str]:
        start = f"{self._prefix}:quota:"
        return self._guard.run(
            lambda: sorted(
                _text(key)[len(start) :] for key in self._client.scan_iter(match=f"{start}*")
            ),
            lambda local: local.ledger.accounts(),
        )

    def _update(self, name: str, change: Callable[[Books], T]) -> T:
        return self._guard.run(
            lambda: self._transact(name, change),
            lambda local: local.ledger._update(name, change),
        )

    def _transact(self, name: str, change: Callable[[Books], T]) -> T:
        quota, inflight = self._keys(name)
        with self._client.pipeline() as pipe:
            for attempt in range(MAX_TRIES):
                try:
                    pipe.watch(quota, inflight)  # type: ignore[no-untyped-call]
                    old_row = _encode(_decode(self._hash(pipe, quota)))
                    old_inflight = self._hash(pipe, inflight)
                    books = Books(row=_decode(old_row), inflight=_reservations(old_inflight))
                    result = change(books)
                    row = _encode(books.row)
                    tickets = {k: f"{c}:{s!r}" for k, (c, s) in books.inflight.items()}
                    pipe.multi()
                    # Only what changed; an empty EXEC still proves the reads were current.
                    if changed := _changes(row, old_row):
                        pipe.hset(quota, mapping=changed)
                    if dropped := old_row.keys() - row.keys():
                        pipe.hdel(quota, *dropped)
                    if added := _changes(tickets, old_inflight):
                        pipe.hset(inflight, mapping=added)
                    if gone := old_inflight.keys() - tickets.keys():
                        pipe.hdel(inflight, *gone)
                    pipe.execute()
                    return result
                except redis.WatchError:
                    # Another writer won: back off a little (jittered) and read again.
                    time.sleep(random.random() * min(0.001 * (attempt + 1), 0.02))
        raise StateUnavailable(f"redis_url {self._guard.url}: {quota} changed {MAX_TRIES} times")


class RedisLeases(Leases):
    """``SET NX PX`` leases; Redis expires them (the ``now`` arguments serve SQLite)."""

    def __init__(self, client: redis.Redis, prefix: str, guard: _Guard) -> None:
        self._client, self._prefix, self._guard = client, prefix, guard
        self._release = client.register_script(_RELEASE)

    def _key(self, key: str) -> str:
        return f"{self._prefix}:lease:{key}"

    def acquire(self, key: str, ttl: float, now: float) -> str | None:
        token = uuid.uuid4().hex
        px = max(1, round(ttl * 1000))
        return self._guard.run(
            lambda: token if self._client.set(self._key(key), token, nx=True, px=px) else None,
            lambda local: local.leases.acquire(key, ttl, now),
        )

    def release(self, key: str, token: str) -> None:
        # Never fails closed: a lease left behind expires on its own.
        with contextlib.suppress(StateUnavailable):
            self._guard.run(lambda: self._release([self._key(key)], [token]), lambda _: None)
        if (local := self._guard.local) is not None:  # it may have been taken there
            local.leases.release(key, token)

    def held(self, key: str, now: float) -> bool:
        return self._guard.run(
            lambda: bool(self._client.exists(self._key(key))),
            lambda local: local.leases.held(key, now),
        )


class _RedisWindow(RedisStateStore):
    """pyrate-limiter's RedisStateStore running ``SlidingCap``'s Lua: one round trip,
    atomic. The state is one MessagePack value that expires once it no longer matters."""

    def _ttl_for(self, rates: list[Rate]) -> int:
        return ttl_ms(rates)

    @staticmethod
    def _decision(rates: list[Rate], reply: Any) -> Decision:
        # {failing rate index (-1 admitted, -2 paused), wait[, granted, changed, gate...]}
        if len(reply) == 2 and reply[0] == -1:
            return PASSED  # admitted, nothing in the gate: the common answer
        # A short reply: nothing granted, changed or in the gate.
        index, wait, granted, changed, *gate = [*map(int, reply), 0, 0, 0, 0, 0, 0][:8]
        found = Gate(*gate)
        if index == -1:
            return Verdict(gate=found, granted=granted, changed=changed)
        if index == -2:
            return Verdict(failing_rate=PAUSED, retry_after_ms=wait, gate=found)
        # A negative wait: the weight exceeds the burst and never fits.
        return Verdict(
            failing_rate=rates[index], retry_after_ms=wait if wait >= 0 else None, gate=found
        )

    def read(self, algorithm: StateAlgorithm, rates: list[Rate]) -> State:
        # For reporting only: no need to keep the script object (no round trip to make it).
        script = self.redis.register_script(READ_LUA)
        values = cast("list[int]", script(keys=[self.key]))
        return tuple(values) if values else algorithm.initial(rates)


class _WindowStore(StateStore):
    """The Redis window store (sync client: sync answers) behind the guard."""

    is_async = False

    def __init__(self, client: redis.Redis, prefix: str, key: str, guard: _Guard) -> None:
        self._redis = _RedisWindow(client, key=f"{prefix}:{key}")
        self._key, self._guard = key, guard

    def _run(self, step: Callable[[StateStore], Any]) -> Any:
        return self._guard.run(
            lambda: step(self._redis), lambda local: step(local.window_store(self._key))
        )

    def check(
        self, algorithm: StateAlgorithm, rates: list[Rate], now: int, weight: int
    ) -> Decision:
        decision = self._run(lambda store: store.check(algorithm, rates, now, weight))
        assert isinstance(decision, Decision)  # a sync client answers synchronously
        return decision

    def read(self, algorithm: StateAlgorithm, rates: list[Rate]) -> State:
        return cast(State, self._run(lambda store: store.read(algorithm, rates)))

    def reset(self) -> None:
        self._run(lambda store: store.reset())


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


class RedisBackend(Backend):
    """All shared state in one Redis; each hishel storage gets a client of its own."""

    def __init__(
        self, client: redis.Redis, url: str, prefix: str, guard: _Guard, retention: float
    ) -> None:
        self.client, self._url, self._prefix, self._guard = client, url, prefix, guard
        self._retention, self._cache = retention, f"{prefix}:cache"
        self.ledger = RedisLedger(client, prefix, guard)
        self.leases = RedisLeases(client, prefix, guard)

    def window_store(self, key: str) -> StateStore:
        return _WindowStore(self.client, self._prefix, key, self._guard)

    def fingerprint_key(self) -> bytes:
        """One key for every machine on the prefix (they share the cache): the first
        to start sets it. Unreachable Redis: the local state's key (its partitions are
        apart from the shared ones, which is safe)."""
        name = f"{self._prefix}:fingerprint-key"

        def remote() -> bytes:
            self.client.set(name, new_key().hex(), nx=True)
            found = self.client.get(name)
            return bytes.fromhex(_text(found)) if found else new_key()

        return self._guard.run(remote, lambda local: local.fingerprint_key())

    # hishel closes its storage's client when the transport closes.
    def storage(self) -> hishel.BaseStorage:
        client = redis.Redis.from_url(self._url, **_options(Retry))
        return hishel.RedisStorage(client, key_prefix=self._cache, default_ttl=self._retention)

    def async_storage(self) -> hishel.AsyncBaseStorage:
        client = redis.asyncio.Redis.from_url(self._url, **_options(redis.asyncio.retry.Retry))
        return hishel.AsyncRedisStorage(client, key_prefix=self._cache, default_ttl=self._retention)

    def cold_store(self, max_bytes: int, secrets: Collection[str]) -> ColdStore | None:
        return RedisColdStore(self.client, self._prefix, max_bytes, secrets)

    def cold_stats(self) -> dict[str, ColdStats] | None:
        return RedisColdStore(self.client, self._prefix, 0, ()).profile_stats()

    def close(self) -> None:
        self.client.close()
        if self._guard.local is not None:
            self._guard.local.close()


def redis_backend(
    url: str, *, prefix: str, fail: str, directory: Path, retention: float
) -> Backend:
    """The Redis backend for ``url``; see ``make_client(redis_url=...)``."""
    guard = _Guard(url, fail, directory)
    try:
        client = redis.Redis.from_url(url, **_options(Retry))
    except ValueError as exc:
        raise ConfigError(f"redis_url: {guard.url} is not a Redis URL ({exc})") from exc
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        if fail == "closed":
            raise ConfigError(f"redis_url: cannot reach {guard.url} ({exc})") from exc
        logger.warning("redis_url %s: %s; using local state in %s", guard.url, exc, directory)
        return SqliteBackend(directory)
    return RedisBackend(client, url, prefix, guard, retention)
