"""Shared state in Redis, for several processes or machines on one API key.

Imported only when ``redis_url`` is given. Keys, all under the prefix::

    {prefix}:quota:{profile}     hash: period, total, remaining, used (the ledger row);
                                 seeded=1 until the API's own numbers come (Ledger._seed)
    {prefix}:inflight:{profile}  hash: ticket id -> "cost:started" (reservations)
    {prefix}:lease:{key}         the holder's token, expiring on its own (SET NX PX)
    {prefix}:replayed:{id}       a journal entry recorded (kept 40 days: each counts once)
    {prefix}:rate:{profile}      the short window's state and the gate: the 429 pause and
                                 the circuit breaker (MessagePack; Lua, see _window)
    {prefix}:cache:...           hishel's RedisStorage entries, read and written in one
                                 call each; hit:{key} a fresh hit's record (_redis_entries)
    {prefix}:counts:{bucket}     the status counters of a UTC day or hour (``_tallies``)
    {prefix}:notes               per profile: the last error and circuit change seen
    {prefix}:waiting:{profile}   waiters by priority, of every process (``_board``)
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
  RETRY_AFTER seconds, so an outage costs one timeout, not one per operation. The
  cost of every call made meanwhile goes to the state directory's journal
  (``_journal``) and is recorded in Redis, once, when it answers again (settling the
  call's reservation if it was made there); a Redis restarted without persistence is
  re-seeded with the row each process last stored, so the period's count survives.
- hishel's storages run on guarded clients (``_redis_client``), a guard each: a
  lookup Redis cannot answer is a miss (``"open"``: the request goes upstream) or
  StateUnavailable (``"closed"``); an answer Redis cannot store is delivered unstored.
  No Redis or socket error reaches the caller from them.
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
import logging
import math
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar, cast

import hishel
import redis
import redis.asyncio
import redis.asyncio.retry
from redis.retry import Retry

from .._cold import ColdStats, ColdStore
from .._credentials import new_key
from ..exceptions import ConfigError, StateUnavailable
from ._async_redis_storage import GuardedAsyncRedisStorage
from ._backend import Backend, Leases
from ._board import Board, RedisBoard
from ._gate import PASSED, PAUSED, GateState, WindowDecision
from ._lua import READ_LUA, WINDOW_LUA
from ._pyrate import Decision, RedisStateStore, State, StateAlgorithm, StateStore, WindowRate
from ._redis_books import LANDED_LUA, Step, holds
from ._redis_client import GuardedAsyncRedis, GuardedRedis, guarded
from ._redis_cold import RedisColdStore
from ._redis_guard import Guard, options, redact
from ._sync_redis_storage import GuardedRedisStorage
from ._tallies import RedisTally, Tally

__all__ = ["RedisBackend", "redact", "redis_backend"]
from ._journal import Journal
from ._redis_ledger import RedisLedger
from ._schema import JOURNAL_FILE
from ._sqlite import SqliteBackend
from ._window import ttl_ms

T = TypeVar("T")
logger = logging.getLogger("quotaflow")

# Compare-and-delete: only the holder's token releases a lease (landed, too).
_RELEASE = f"""{LANDED_LUA}
if landed(redis.call('GET', KEYS[1])) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
"""
# Taken (ARGV: token, milliseconds, the caller's clock in ms) unless another token holds
# it: as the ledger's script takes one (``_redis_books``), and as on SQLite, a lease its
# token holds is renewed and a landed one that lapsed on the caller's clock is anyone's.
_ACQUIRE = f"""{LANDED_LUA}
local holder, lapses = landed(redis.call('GET', KEYS[1]))
if holder and holder ~= ARGV[1] and not (lapses and lapses <= tonumber(ARGV[3])) then
    return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisLeases(Leases):
    """Leases Redis expires (``PX``), landed with a settle in the ledger's script: then
    they name when they lapse on the settle's clock too, which ``now`` is judged by."""

    lands = True

    def __init__(self, client: redis.Redis, prefix: str, guard: Guard) -> None:
        self._client, self._prefix, self._guard = client, prefix, guard
        self._release = client.register_script(_RELEASE)
        self._acquire = client.register_script(_ACQUIRE)

    def _key(self, key: str) -> str:
        return f"{self._prefix}:lease:{key}"  # also the ledger's (``_redis_ledger._lease``)

    def joins(self, client: redis.Redis) -> bool:
        """Whether the lease can be taken in a transaction of ``client``'s."""
        return client is self._client

    def acquire(self, key: str, ttl: float, now: float, token: str | None = None) -> str | None:
        held = token or self.token()
        args: list[str | int] = [held, max(1, round(ttl * 1000)), math.floor(now * 1000)]
        return self._guard.run(
            lambda: held if self._acquire([self._key(key)], args) else None,
            lambda local: local.leases.acquire(key, ttl, now, held),
        )

    def release(self, key: str, token: str) -> None:
        # Never fails closed: a lease left behind expires on its own.
        with contextlib.suppress(StateUnavailable):
            self._guard.run(lambda: self._release([self._key(key)], [token]), lambda _: None)
        if (local := self._guard.local) is not None:  # it may have been taken there
            local.leases.release(key, token)

    def held(self, key: str, now: float) -> bool:
        return self._guard.run(
            lambda: holds(self._client.get(self._key(key)), now),
            lambda local: local.leases.held(key, now),
        )


class _RedisWindow(RedisStateStore):
    """pyrate-limiter's RedisStateStore running ``SlidingCap``'s Lua: one round trip,
    atomic. The state is one MessagePack value that expires once it no longer matters."""

    def _ttl_for(self, rates: list[WindowRate]) -> int:
        return ttl_ms(rates)

    @staticmethod
    def _decision(rates: list[WindowRate], reply: Any) -> Decision:
        # {failing rate index (-1 admitted, -2 paused), wait[, granted, changed, gate...]}
        if len(reply) == 2 and reply[0] == -1:
            return PASSED  # admitted, nothing in the gate: the common answer
        # A short reply: nothing granted, changed or in the gate.
        index, wait, granted, changed, *gate = [*map(int, reply), 0, 0, 0, 0, 0, 0][:8]
        found = GateState(*gate)
        if index == -1:
            return WindowDecision(gate=found, granted=granted, changed=changed)
        if index == -2:
            return WindowDecision(failing_rate=PAUSED, retry_after_ms=wait, gate=found)
        # A negative wait: the weight exceeds the burst and never fits.
        return WindowDecision(
            failing_rate=rates[index], retry_after_ms=wait if wait >= 0 else None, gate=found
        )

    def read(self, algorithm: StateAlgorithm, rates: list[WindowRate]) -> State:
        # For reporting only: no need to keep the script object (no round trip to make it).
        script = self.redis.register_script(READ_LUA)
        values = cast("list[int]", script(keys=[self.key]))
        return tuple(values) if values else algorithm.initial(rates)


def _sync(
    store: StateStore, algorithm: StateAlgorithm, rates: list[WindowRate], now: int, weight: int
) -> Decision:
    decision = store.check(algorithm, rates, now, weight)
    assert isinstance(decision, Decision)  # sync stores only
    return decision


class _WindowStore(StateStore):
    """The Redis window store (sync client: sync answers) behind the guard."""

    is_async = False

    def __init__(self, client: redis.Redis, prefix: str, key: str, guard: Guard) -> None:
        self._redis = _RedisWindow(client, key=f"{prefix}:{key}")
        self._key, self._guard = key, guard
        self._sha = client.register_script(WINDOW_LUA).sha

    def joins(self, client: object) -> bool:
        """Whether a check can join a ledger's call on ``client`` (the ledger's)."""
        return client is self._redis.redis

    def queue(
        self,
        step: Step,
        algorithm: StateAlgorithm,
        rates: list[WindowRate],
        now: int,
        weight: int,
    ) -> Callable[[Any], Decision]:
        """The check joined to the ledger's script call (the reservation: one round
        trip for both, see ``Limiter.reserve`` and ``_redis_books``); how to read its
        reply."""
        args = [now, weight, ttl_ms(rates), len(rates), *algorithm.redis_args(rates)]
        step.evalsha(self._sha, 1, self._redis.key, *args)
        return lambda reply: self._redis._decision(rates, reply)

    def _run(self, step: Callable[[StateStore], Any]) -> Any:
        return self._guard.run(
            lambda: step(self._redis), lambda local: step(local.window_store(self._key))
        )

    def check(
        self, algorithm: StateAlgorithm, rates: list[WindowRate], now: int, weight: int
    ) -> Decision:
        def remote() -> Decision:
            found = self._redis.check(algorithm, rates, now, weight)  # type: ignore[no-untyped-call]
            assert isinstance(found, Decision)  # a sync client answers synchronously
            return found

        return self._guard.run(
            remote,
            lambda local: _sync(local.window_store(self._key), algorithm, rates, now, weight),
        )

    def read(self, algorithm: StateAlgorithm, rates: list[WindowRate]) -> State:
        return cast(State, self._run(lambda store: store.read(algorithm, rates)))

    def reset(self) -> None:
        self._run(lambda store: store.reset())


class RedisBackend(Backend):
    """All shared state in one Redis; each hishel storage gets a client of its own."""

    def __init__(
        self, client: redis.Redis, url: str, prefix: str, guard: Guard, retention: float
    ) -> None:
        self.client, self._url, self._prefix, self._guard = client, url, prefix, guard
        self._retention, self._cache = retention, f"{prefix}:cache"
        journal = Journal(guard.directory / JOURNAL_FILE)
        self.ledger = RedisLedger(client, prefix, guard, journal)
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

    # hishel closes its storage's client with the transport. A guard per storage: a
    # ledger cut off from Redis must not hide a stored answer that could stand in.
    def _storage_guard(self) -> Guard:
        return Guard(self._url, self._guard.fail, self._guard.directory)

    def storage(self) -> hishel.BaseStorage:
        client = guarded(GuardedRedis, self._url, self._storage_guard(), **options(Retry))
        return GuardedRedisStorage(client, key_prefix=self._cache, default_ttl=self._retention)

    def async_storage(self) -> hishel.AsyncBaseStorage:
        retry = redis.asyncio.retry.Retry
        client = guarded(GuardedAsyncRedis, self._url, self._storage_guard(), **options(retry))
        return GuardedAsyncRedisStorage(client, key_prefix=self._cache, default_ttl=self._retention)

    def cold_store(self, max_bytes: int, secrets: Collection[str]) -> ColdStore | None:
        return RedisColdStore(self.client, self._prefix, max_bytes, secrets)

    def cold_stats(self) -> dict[str, ColdStats] | None:
        return RedisColdStore(self.client, self._prefix, 0, ()).profile_stats()

    def tally(self) -> Tally | None:
        return RedisTally(self.client, self._prefix)

    def board(self, profile: str) -> Board | None:
        return RedisBoard(self.client, self._prefix, profile)

    def round_trips(self) -> int:
        local = self._guard.local
        return self._guard.trips + (local.round_trips() if local is not None else 0)

    def close(self) -> None:
        self.client.close()
        if self._guard.local is not None:
            self._guard.local.close()


def redis_backend(
    url: str, *, prefix: str, fail: str, directory: Path, retention: float
) -> Backend:
    """The Redis backend for ``url``; see ``make_client(redis_url=...)``."""
    guard = Guard(url, fail, directory)
    try:
        client = guarded(GuardedRedis, url, guard, **options(Retry))
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
