"""The Redis backend against a real Redis at 127.0.0.1:6379 (skipped if absent, failed on CI).

Each test keeps its keys under a prefix of its own and deletes them afterwards.
"""

from __future__ import annotations

import inspect
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
import redis
import respx
import time_machine
from pyrate_limiter import Decision

import quotaflow
from quotaflow import Priority, Quota, QuotaExhausted, QuotaReading, Rate
from quotaflow._state._backend import Backend
from quotaflow._state._redis import RedisBackend, redact, redis_backend
from quotaflow._state._short import ShortWindow
from tests import test_policy
from tests.conftest import Harness, api_profile, info
from tests.stub_server import REDIS_URL

DEAD_URL = "redis://127.0.0.1:1/0"
ODDS = "https://api.test/odds"

# The ledger rules are the Ledger base class's: every SQLite ledger case must hold here.
LEDGER_CASES = [
    case
    for name, case in vars(test_policy).items()
    if name.startswith("test_") and list(inspect.signature(case).parameters) == ["ledger"]
]


@pytest.fixture
def open_backend(prefix: str, tmp_path: Path) -> Iterator[Callable[..., RedisBackend]]:
    """``open_backend()`` builds a Redis backend on the test's prefix (closed afterwards)."""
    backends: list[Backend] = []

    def build() -> RedisBackend:
        backend = redis_backend(
            REDIS_URL, prefix=prefix, fail="closed", directory=tmp_path, retention=3600.0
        )
        backends.append(backend)
        assert isinstance(backend, RedisBackend)
        return backend

    yield build
    for backend in backends:
        backend.close()


def keys_under(raw: redis.Redis, prefix: str) -> list[bytes]:
    return sorted(raw.scan_iter(match=f"{prefix}*"))


def ledger_rows(state_db: Path) -> int:
    """Rows in the SQLite ledger tables of a state file (0 if there is none)."""
    if not state_db.exists():
        return 0
    with sqlite3.connect(state_db) as db:
        found = sum(
            db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("quota", "inflight")
        )
    db.close()
    return int(found)


# -- the ledger ------------------------------------------------------------------------


def test_the_sqlite_ledger_cases_are_found() -> None:
    """Guard against the reuse below silently running nothing."""
    assert len(LEDGER_CASES) >= 4


@pytest.mark.parametrize("case", LEDGER_CASES, ids=lambda case: case.__name__)
def test_redis_ledger_follows_the_sqlite_rules(
    case: Callable[[Any], None], open_backend: Callable[..., RedisBackend]
) -> None:
    """Out-of-order readings, in-flight counting, crash charging, new periods: as in SQLite."""
    case(open_backend().ledger)


def test_ledger_layout_and_sharing(
    open_backend: Callable[..., RedisBackend], raw: redis.Redis, prefix: str
) -> None:
    """Two hashes per profile; a second backend on the prefix sees the same books."""
    first, second = open_backend().ledger, open_backend().ledger
    profile, now = test_policy.PROFILE, test_policy.NOW

    ticket = first.reserve(profile, Priority.NORMAL, 3, now)
    assert ticket is not None
    assert raw.hgetall(f"{prefix}:inflight:api") == {ticket.id.encode(): f"3:{now!r}".encode()}

    assert second.settle(profile, ticket, 3, QuotaReading(), now) == 97
    assert not raw.exists(f"{prefix}:inflight:api")
    assert raw.hgetall(f"{prefix}:quota:api") == {
        b"period": repr(test_policy.ts(2026, 11, 1)).encode(),
        b"total": b"100",
        b"remaining": b"97",
        # Made without the API's numbers yet: every process may bring what it saw
        # should Redis lose it (see test_a_redis_that_lost_its_rows_*).
        b"seeded": b"1",
    }
    assert second.known_remaining(profile) == 97
    assert first.peek(profile) == second.peek(profile)


def test_concurrent_reservations_never_exceed_the_quota(
    open_backend: Callable[..., RedisBackend],
) -> None:
    """8 threads x 25 reservations of 1 unit against 100 units: exactly 100 admitted."""
    ledgers = [open_backend().ledger, open_backend().ledger]
    profile = api_profile(quota=Quota(100), rates=())
    now = time.time()
    admitted: list[int] = []
    refused: list[int] = []
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        ledger = ledgers[n % 2]
        start.wait()
        for _ in range(25):
            try:
                ticket = ledger.reserve(profile, Priority.CRITICAL, 1, now)
            except QuotaExhausted:
                refused.append(n)
            else:
                ledger.settle(profile, ticket, 1, QuotaReading(), now)
                admitted.append(n)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert (len(admitted), len(refused)) == (100, 100)
    row = ledgers[1].peek(profile)
    assert row is not None
    assert row.remaining == 0


# -- the short window and the leases ---------------------------------------------------


def test_window_store_answers_synchronously_and_is_shared(
    open_backend: Callable[..., RedisBackend],
) -> None:
    """The Redis window store on a sync client returns a Decision, not a coroutine."""

    def open_backends(n: int) -> list[RedisBackend]:
        return [open_backend() for _ in range(n)]

    profile = api_profile(rates=(Rate(2, per=1.0, burst=2),))
    first, second = (ShortWindow(profile, b.window_store("rate:api")) for b in open_backends(2))
    now = time.time()

    decision = first.store.check(first.algorithm, first.rates, int(now * 1000), 1)
    assert isinstance(decision, Decision)
    assert decision.allowed
    waits = [second.try_acquire(now), first.try_acquire(now)]

    assert waits[0] == 0.0
    # Full at 2: the third waits for the first to leave the window (1 s, +1 ms at most).
    assert 1.0 < waits[1] <= 1.0011


def test_window_state_is_one_expiring_string(
    open_backend: Callable[..., RedisBackend], raw: redis.Redis, prefix: str
) -> None:
    """The window's state is the integers SQLite keeps (the last check's time, then per
    rate: tat, pairs, stamp, units...) in MessagePack; a token-bucket hash of an older
    version starts over."""
    key = f"{prefix}:rate:api"
    raw.hset(key, mapping={"tat1": "99999999999999999"})  # would block for years
    window = ShortWindow(
        api_profile(rates=(Rate(2, per=1.0),)), open_backend().window_store("rate:api")
    )
    now = 1_795_953_600.5

    assert window.available(now) == 2
    assert [window.try_acquire(now), window.try_acquire(now)] == [0.0, 0.0]
    assert msgpack.unpackb(raw.get(key)) == [1795953600500, 0, 1, 1795953600500, 2]
    assert 0 < raw.pttl(key) <= 2 * 1002


def test_leases(open_backend: Callable[..., RedisBackend], raw: redis.Redis, prefix: str) -> None:
    """One holder at a time; only its token releases; Redis expires a forgotten lease."""
    leases, other = open_backend().leases, open_backend().leases

    token = leases.acquire("odds", ttl=30, now=0)
    assert token is not None
    assert raw.get(f"{prefix}:lease:odds") == token.encode()
    assert other.acquire("odds", ttl=30, now=0) is None
    other.release("odds", "not-the-token")
    assert other.held("odds", now=0)
    other.release("odds", token)
    assert not leases.held("odds", now=0)

    assert leases.acquire("short", ttl=0.05, now=0) is not None
    assert other.acquire("short", ttl=30, now=0) is None
    time.sleep(0.12)
    assert not other.held("short", now=0)
    assert other.acquire("short", ttl=30, now=0) is not None


def test_redact() -> None:
    """Passwords never reach a message."""
    assert redact("redis://user:hunter2@h:6379/0") == "redis://user:***@h:6379/0"
    assert redact("redis://:hunter2@h/0") == "redis://:***@h/0"
    assert redact("redis://h/0?password=hunter2&db=1") == "redis://h/0?password=***&db=1"
    assert redact(REDIS_URL) == REDIS_URL


# -- whole clients ---------------------------------------------------------------------


def test_cache_and_quota_are_shared_through_redis(
    stack: Callable[..., Harness], router: respx.Router, prefix: str, tmp_path: Path
) -> None:
    """A second client on another, empty state_dir hits the cache and spends the same quota."""
    route = router.get(url__startswith="https://api.test/").respond(200, json={"ok": 1})
    settings = {
        "redis_url": REDIS_URL,
        "redis_prefix": prefix,
        "profiles": [api_profile(quota=Quota(3), rates=())],
    }
    critical = {"priority": "critical"}
    first = stack(**settings)
    second = stack(**settings, state_dir=tmp_path / "elsewhere")

    assert info(first.get(ODDS, extensions=critical)).cache is quotaflow.CacheStatus.MISS
    assert info(first.get(ODDS, extensions=critical)).cache is quotaflow.CacheStatus.HIT
    assert info(second.get(ODDS, extensions=critical)).cache is quotaflow.CacheStatus.HIT
    assert route.call_count == 1

    first.get(f"{ODDS}/2", extensions=critical)
    assert info(second.get(f"{ODDS}/3", extensions=critical)).remaining == 0
    with pytest.raises(QuotaExhausted):
        second.get(f"{ODDS}/4", extensions=critical)
    with pytest.raises(QuotaExhausted):
        first.get(f"{ODDS}/5", extensions=critical)
    assert route.call_count == 3

    for state_dir in (tmp_path / "state", tmp_path / "elsewhere"):
        assert ledger_rows(state_dir / "state.db") == 0


def test_secrets_never_reach_redis(
    stack: Callable[..., Harness],
    router: respx.Router,
    prefix: str,
    raw: redis.Redis,
) -> None:
    """Neither an apiKey parameter nor a secret header is in any key or value."""
    router.get(url__startswith="https://api.test/").respond(200, json={"ok": 1})
    client = stack(
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        profiles=[api_profile(rates=(Rate(5, per=1.0, burst=5),))],
    )
    url = f"{ODDS}?apiKey=SECRETKEY123&key=SECRETKEY456&region=eu"
    client.get(url, headers={"x-token": "SECRETTOKEN789"})
    assert info(client.get(url, headers={"x-token": "SECRETTOKEN789"})).cache.value == "hit"

    keys = keys_under(raw, prefix)
    assert {key.split(b":")[1] for key in keys} >= {b"cache", b"quota", b"rate"}
    stored: list[Any] = [raw.dump(key) or b"" for key in keys]
    for key in keys:
        kind = raw.type(key)
        if kind == b"string":
            stored.append(raw.get(key) or b"")
        elif kind == b"hash":
            stored.extend(part for pair in raw.hgetall(key).items() for part in pair)
        elif kind == b"list":
            stored.extend(raw.lrange(key, 0, -1))
        elif kind == b"zset":
            stored.extend(raw.zrange(key, 0, -1))
        else:
            raise AssertionError(f"unexpected {kind!r} at {key!r}")
    assert b"odds" in b"".join(stored)  # the cache entries are really there
    for blob in (*keys, *stored):
        assert b"SECRET" not in blob


def test_unreachable_redis_fails_closed_at_build(stack: Callable[..., Harness]) -> None:
    """The default: no Redis, no client. The message names the setting, not the password."""
    with pytest.raises(quotaflow.ConfigError, match="redis_url") as caught:
        stack(redis_url="redis://user:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in str(caught.value)


def test_unreachable_redis_can_fail_open_at_build(
    stack: Callable[..., Harness],
    router: respx.Router,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """redis_fail="open": one warning, then local SQLite state does the job."""
    route = router.get(ODDS).respond(200, json={"ok": 1})
    with caplog.at_level(logging.WARNING, logger="quotaflow"):
        client = stack(redis_url=DEAD_URL, redis_fail="open")
    warnings = [r for r in caplog.records if r.name == "quotaflow" and "redis_url" in r.message]
    assert len(warnings) == 1

    client.get(ODDS)
    assert info(client.get(ODDS)).cache is quotaflow.CacheStatus.HIT
    assert route.call_count == 1
    assert ledger_rows(tmp_path / "state" / "state.db") == 1


@pytest.fixture
def broken(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """``broken()`` cuts the built backends' ledger, lease and window client off Redis.

    The cache keeps its own clients, so a stored answer can still stand in.
    """
    built: list[RedisBackend] = []
    real = redis_backend

    def capture(*args: Any, **kwargs: Any) -> Backend:
        backend = real(*args, **kwargs)
        if isinstance(backend, RedisBackend):
            built.append(backend)
        return backend

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise redis.ConnectionError("Redis went away")

    def cut() -> None:
        for backend in built:
            monkeypatch.setattr(backend.client.connection_pool, "get_connection", refuse)

    monkeypatch.setattr("quotaflow._state._redis.redis_backend", capture)
    return cut


def test_redis_lost_at_run_time_fails_closed(
    stack: Callable[..., Harness],
    router: respx.Router,
    prefix: str,
    broken: Callable[[], None],
    traveller: time_machine.Traveller,
) -> None:
    """StateUnavailable, or the stored answer marked stale where one exists."""
    route = router.get(url__startswith="https://api.test/").respond(200, json={"ok": 1})
    client = stack(redis_url=REDIS_URL, redis_prefix=prefix)
    client.get(ODDS)
    traveller.shift(120)  # past its 60 s freshness, within max_stale
    broken()

    stale = client.get(ODDS)
    assert info(stale).cache is quotaflow.CacheStatus.STALE
    assert stale.json() == {"ok": 1}
    with pytest.raises(quotaflow.StateUnavailable, match="redis_url"):
        client.get(f"{ODDS}/never-seen")
    assert route.call_count == 1


def test_redis_lost_at_run_time_can_fail_open(
    stack: Callable[..., Harness],
    router: respx.Router,
    prefix: str,
    broken: Callable[[], None],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """redis_fail="open": the operations go to local SQLite state, with one warning."""
    route = router.get(url__startswith="https://api.test/").respond(200, json={"ok": 1})
    client = stack(redis_url=REDIS_URL, redis_prefix=prefix, redis_fail="open")
    client.get(ODDS)
    broken()

    with caplog.at_level(logging.WARNING, logger="quotaflow"):
        for n in range(3):
            assert client.get(f"{ODDS}/{n}").status_code == 200
    assert route.call_count == 4
    assert len([r for r in caplog.records if "redis_url" in r.message]) == 1
    assert ledger_rows(tmp_path / "state" / "state.db") == 1


def test_an_answer_paid_for_is_delivered_when_redis_drops_before_settling(
    stack: Callable[..., Harness],
    router: respx.Router,
    prefix: str,
    broken: Callable[[], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis gone between the upstream call and the ledger update: the answer still comes."""

    def answer(request: httpx.Request) -> httpx.Response:
        broken()  # the call went out; now the shared ledger is unreachable
        return httpx.Response(200, json={"paid": True})

    router.get(url__startswith="https://api.test/").mock(side_effect=answer)
    client = stack(redis_url=REDIS_URL, redis_prefix=prefix)

    with caplog.at_level(logging.WARNING, logger="quotaflow"):
        response = client.get(ODDS)

    assert response.json() == {"paid": True}
    assert "could not record a cost" in caplog.text
