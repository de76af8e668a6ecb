"""State round trips per upstream call (issue 16): the ledger's reservation, the short
window's check (with the pause and the circuit) and the single-flight lease share one
SQLite transaction before the upstream call, the settle and the lease's landing one
after; the backend counts its round trips so benchmarks can report them per miss."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import respx

from quotaflow import Priority, Quota, Rate
from quotaflow._plan import _PARTS
from quotaflow._state._db import StateDB
from quotaflow._state._sqlite import SqliteLedger

from .conftest import BASE, START, Harness, api_profile, info

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def misses(client: Harness, n: int, start: int = 0) -> int:
    """State round trips of ``n`` misses."""
    backend = _PARTS[client.client].backend
    before = backend.round_trips()
    for i in range(start, start + n):
        client.get(f"{BASE}/m{i}")
    return int(backend.round_trips() - before)


@pytest.mark.parametrize("joint", [True, False])
def test_a_miss_costs_one_round_trip_less_joined(
    stack: Callable[..., Harness], router: respx.Router, joint: bool
) -> None:
    """On SQLite a miss makes 2 transactions joined (reservation, window check and
    lease; settle and the lease's landing), 3 with the window's check apart; the ledger
    and the window count the same either way."""
    router.get(url__startswith=f"{BASE}/m").respond(200, json={})
    client = stack(profiles=[api_profile(rates=(Rate(100, per=1.0),))])
    _PARTS[client.client].limiter.joint = joint
    client.get(f"{BASE}/m-warm")

    assert misses(client, 10) == 10 * (2 if joint else 3)
    last = client.get(f"{BASE}/m-last")
    assert info(last).remaining == 100 - 12
    window = _PARTS[client.client].limiter.windows["api"]
    assert window.available(START.timestamp()) == 100 - 12


def test_a_miss_writes_state_db_twice_as_the_benchmark_counts(
    stack: Callable[..., Harness],
    router: respx.Router,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Counted as ``benchmarks/paths.py`` counts them (a trace on every sqlite3
    connection the client opens): a miss begins 2 write transactions on state.db, one
    before the upstream call and one after, as the backend's own count says."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import paths

    route = router.get(url__startswith=f"{BASE}/m").respond(200, json={})
    with paths.sql_traced() as counts:
        client = stack(profiles=[api_profile(rates=(Rate(100, per=1.0),))])
        client.get(f"{BASE}/m-warm")
        counts.clear()
        assert misses(client, 10) == 20
        assert counts[("state.db", "writes")] == 20
    assert route.call_count == 11


def test_a_post_to_a_profiled_host_is_one_round_trip_before_and_one_after(
    stack: Callable[..., Harness], router: respx.Router
) -> None:
    """A request that takes no lease (a POST is never cached) on a profile that limits
    POSTs: its reservation with the window's check, then its settle."""
    route = router.post(url__startswith=f"{BASE}/p").respond(200, json={})
    profile = api_profile(rates=(Rate(100, per=1.0),), limited_methods=("GET", "POST"))
    client = stack(profiles=[profile])
    client.request("POST", f"{BASE}/p-warm", json={})
    backend = _PARTS[client.client].backend
    before = backend.round_trips()
    for i in range(10):
        client.request("POST", f"{BASE}/p{i}", json={})
    assert backend.round_trips() - before == 20
    assert route.call_count == 11


def test_a_joined_check_that_refuses_leaves_the_wait_to_the_room(
    stack: Callable[..., Harness], router: respx.Router, sleeps: list[float]
) -> None:
    """2 a second: the third request's joined check refuses; it waits in the room as
    before (a second and a millisecond, see _window) and goes, once."""
    route = router.get(url__startswith=f"{BASE}/m").respond(200, json={})
    client = stack(profiles=[api_profile(rates=(Rate(2, per=1.0),))])
    for i in range(3):
        client.get(f"{BASE}/m{i}", extensions={"priority": "critical"})
    assert route.call_count == 3
    assert sleeps == [pytest.approx(1.001, abs=1e-3)]


def test_a_refused_reservation_takes_no_place_in_the_window(tmp_path: Path) -> None:
    """The quota refuses: the joined check is rolled back with the reservation."""
    from quotaflow._state._short import ShortWindow
    from quotaflow._state._sqlite import SqliteWindowStore
    from quotaflow.exceptions import QuotaExhausted

    db = StateDB(tmp_path / "state.db")
    ledger = SqliteLedger(db)
    profile = api_profile(quota=Quota(1), rates=(Rate(5, per=1.0),))
    window = ShortWindow(profile, SqliteWindowStore(db, "rate:api"))
    ran: list[object] = []

    def also(cur: object) -> None:
        window.check_in(cur, 1000.0, ran.append)

    assert ledger.joint(window.store)
    ledger.reserve_with(profile, Priority.CRITICAL, 1, 1000.0, None, also)
    with pytest.raises(QuotaExhausted):
        ledger.reserve_with(profile, Priority.CRITICAL, 1, 1000.0, None, also)
    assert len(ran) == 1
    assert window.available(1000.0) == 4
    db.close()


def test_redis_counts_its_round_trips(
    stack: Callable[..., Harness], router: respx.Router, prefix: str
) -> None:
    """On Redis the backend counts commands and scripts: a miss makes two script calls,
    as SQLite makes two transactions: the reservation with the window's step and the
    lease's taking, then the settle with the lease's landing (``_redis_books``); nothing
    once the answer is stored. The ledger and the window count the same."""
    from .stub_server import REDIS_URL

    router.get(url__startswith=f"{BASE}/m").respond(200, json={})
    client = stack(
        profiles=[api_profile(rates=(Rate(100, per=1.0),))],
        redis_url=REDIS_URL,
        redis_prefix=prefix,
    )
    client.get(f"{BASE}/m-warm")
    assert misses(client, 10) == 10 * 2
    last = client.get(f"{BASE}/m-last")
    assert info(last).remaining == 100 - 12
    window = _PARTS[client.client].limiter.windows["api"]
    assert window.available(START.timestamp()) == 100 - 12


def test_a_redis_miss_sends_the_state_client_two_commands(
    stack: Callable[..., Harness],
    router: respx.Router,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Counted on the wire of the state's client (hishel's storage has clients of its
    own): two commands a miss, both the ledger's script; the lease is not given back
    once the answer is stored (it lapses: landed with the settle)."""
    from .stub_server import REDIS_URL

    route = router.get(url__startswith=f"{BASE}/m").respond(200, json={})
    client = stack(
        profiles=[api_profile(rates=(Rate(100, per=1.0),))],
        redis_url=REDIS_URL,
        redis_prefix=prefix,
    )
    client.get(f"{BASE}/m-warm")
    state = _PARTS[client.client].backend.client
    sent: list[str] = []
    execute = state.execute_command

    def traced(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]).upper())
        return execute(*args, **options)

    monkeypatch.setattr(state, "execute_command", traced)
    for i in range(10):
        client.get(f"{BASE}/m{i}")
    assert sent == ["EVALSHA"] * 20
    assert route.call_count == 11


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_is_not_charged(
    stack: Callable[..., Harness], router: respx.Router, status: int
) -> None:
    """A 401 or 403 for a bad key, saying nothing of the quota, costs nothing (issue 14);
    an answer the API says was free (``last`` 0) neither."""
    router.get(f"{BASE}/bad").respond(status, json={"message": "invalid key"})
    router.get(f"{BASE}/free").respond(200, json={}, headers={"x-cost": "0"})
    router.get(f"{BASE}/paid").respond(200, json={})
    client = stack()

    refused = client.get(f"{BASE}/bad")
    free = client.get(f"{BASE}/free")
    paid = client.get(f"{BASE}/paid")

    assert (refused.status_code, info(refused).cost, info(refused).remaining) == (status, 0, 100)
    assert (info(free).cost, info(free).remaining) == (0, 100)
    assert (info(paid).cost, info(paid).remaining) == (1, 99)


def test_a_script_redis_forgot_leaves_the_check_to_the_wait_room(
    stack: Callable[..., Harness], router: respx.Router
) -> None:
    """The ledger's script (with the window's step in it) meets NOSCRIPT (Redis
    restarted, or its scripts flushed): it is loaded again, every request is answered
    and counted once."""
    import redis

    from .faults.test_journal import OwnRedis

    own = OwnRedis()
    own.start()
    try:
        route = router.get(url__startswith=f"{BASE}/m").respond(200, json={})
        client = stack(redis_url=own.url, redis_prefix="noscript")
        for i in range(3):
            client.get(f"{BASE}/m{i}")
        raw = redis.Redis.from_url(own.url)
        raw.script_flush()
        raw.close()
        for i in range(3, 6):
            last = client.get(f"{BASE}/m{i}")
        assert route.call_count == 6
        assert info(last).remaining == 100 - 6
    finally:
        own.stop()


def test_a_miss_lands_its_lease_with_the_settle(
    stack: Callable[..., Harness], router: respx.Router, tmp_path: Path
) -> None:
    """The lease taken with the reservation is set to lapse FOLLOW_BODY after the answer
    (in the settle's transaction), and nothing more is written once the answer is
    stored: the other processes find it in storage meanwhile."""
    import sqlite3

    from quotaflow._flight import FOLLOW_BODY

    router.get(f"{BASE}/landed").respond(200, json={})
    client = stack()
    client.get(f"{BASE}/landed")
    with contextlib.closing(sqlite3.connect(tmp_path / "state" / "state.db")) as db:
        (expires,) = db.execute("SELECT expires FROM leases").fetchall()
    assert expires[0] == pytest.approx(START.timestamp() + FOLLOW_BODY, abs=0.01)


def test_a_lease_held_elsewhere_reserves_nothing_while_it_waits(
    stack: Callable[..., Harness], router: respx.Router, sleeps: list[float]
) -> None:
    """Another process holds the lease: the reservation asked with it is not made (the
    quota is charged once, for the one call this request makes), the request waits for
    the other's answer within its own limit, then fetches for itself."""
    from quotaflow._info import storage_key

    route = router.get(f"{BASE}/held").respond(200, json={})
    client = stack()
    backend = _PARTS[client.client].backend
    key = storage_key(f"{BASE}/held")
    assert backend.leases.acquire(key, 30.0, START.timestamp(), "elsewhere") == "elsewhere"
    response = client.get(f"{BASE}/held", extensions={"timeout": {"pool": 0.2}})
    assert route.call_count == 1
    assert info(response).remaining == 99
    assert sleeps
    assert sum(sleeps) == pytest.approx(0.2, abs=0.06)
