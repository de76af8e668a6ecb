"""The Redis ledger's one script a change (issue 16, ``_redis_books``): worked out on the
books this process last saw, written only if Redis still holds them, worked out again
on what Redis answers otherwise; the lease taken with a reservation and landed with a
settle. Against the real Redis at 127.0.0.1:6379 (failed on CI without it), each test
under a prefix of its own."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from quotaflow import Priority, Quota, QuotaExhausted, QuotaReading
from quotaflow._state._backend import LeaseHeld, LeaseStep
from quotaflow._state._redis import RedisBackend
from tests import test_policy
from tests.conftest import api_profile

NOW = test_policy.NOW
PROFILE = api_profile(quota=Quota(100), rates=())


def trips(backend: RedisBackend, step: Callable[[], object]) -> int:
    before = backend.round_trips()
    step()
    return backend.round_trips() - before


def test_one_round_trip_a_change_on_books_seen_here(
    open_backend: Callable[[], RedisBackend],
) -> None:
    """The first change of an account reads its books first; every later one of this
    process is one call."""
    backend = open_backend()
    ledger = backend.ledger
    ticket = None

    def reserve() -> None:
        nonlocal ticket
        ticket = ledger.reserve(PROFILE, Priority.NORMAL, 1, NOW)

    assert trips(backend, reserve) == 2
    assert trips(backend, lambda: ledger.settle(PROFILE, ticket, 1, QuotaReading(), NOW)) == 1
    assert trips(backend, reserve) == 1
    assert ledger.settle(PROFILE, ticket, 1, QuotaReading(), NOW) == 98


def test_books_another_process_changed_are_worked_out_again(
    open_backend: Callable[[], RedisBackend],
) -> None:
    """Another process settled meanwhile: the call writes nothing, answers the books
    Redis holds, and the change runs again on them (one more round trip); nothing of
    either process is lost."""
    first, second = open_backend(), open_backend()
    ticket = first.ledger.reserve(PROFILE, Priority.NORMAL, 1, NOW)
    first.ledger.settle(PROFILE, ticket, 1, QuotaReading(), NOW)
    other = second.ledger.reserve(PROFILE, Priority.NORMAL, 5, NOW)
    second.ledger.settle(PROFILE, other, 5, QuotaReading(), NOW)

    found = None

    def reserve() -> None:
        nonlocal found
        found = first.ledger.reserve(PROFILE, Priority.NORMAL, 2, NOW)

    assert trips(first, reserve) == 2
    assert first.ledger.settle(PROFILE, found, 2, QuotaReading(), NOW) == 100 - 8
    assert second.ledger.peek(PROFILE) == first.ledger.peek(PROFILE)


def test_a_refusal_stands_only_on_the_books_redis_holds(
    open_backend: Callable[[], RedisBackend],
) -> None:
    """The books seen here say the quota is used up; another process has since heard
    from the API that 50 are left: the refusal is checked against Redis (a call that
    writes nothing) and the reservation made on what it holds. A refusal on current
    books costs that one call, and writes nothing."""
    first, second = open_backend(), open_backend()
    first.ledger.settle(PROFILE, None, 1, QuotaReading(remaining=0), NOW)
    with pytest.raises(QuotaExhausted):
        first.ledger.reserve(PROFILE, Priority.CRITICAL, 1, NOW)
    row = first.ledger.peek(PROFILE)

    def refused() -> None:
        with pytest.raises(QuotaExhausted):
            first.ledger.reserve(PROFILE, Priority.CRITICAL, 1, NOW)

    assert trips(first, refused) == 1
    assert first.ledger.peek(PROFILE) == row

    second.ledger.settle(PROFILE, None, 1, QuotaReading(remaining=50), NOW)
    ticket = first.ledger.reserve(PROFILE, Priority.CRITICAL, 1, NOW)
    assert ticket is not None
    assert first.ledger.settle(PROFILE, ticket, 1, QuotaReading(), NOW) == 49


def test_a_lease_held_elsewhere_reserves_nothing(
    open_backend: Callable[[], RedisBackend], raw: redis.Redis, prefix: str
) -> None:
    """Another process holds the lease: the call writes nothing, whatever the books
    seen here; its holder's own token takes it again."""
    first, second = open_backend(), open_backend()
    ticket = first.ledger.reserve(PROFILE, Priority.NORMAL, 1, NOW)
    first.ledger.settle(PROFILE, ticket, 1, QuotaReading(), NOW)
    assert second.leases.acquire("odds", 30.0, NOW, "elsewhere") == "elsewhere"

    take = LeaseStep("odds", "mine", 30.0, NOW, take=True)
    with pytest.raises(LeaseHeld):
        first.ledger.reserve_with(PROFILE, Priority.NORMAL, 1, NOW, lease=take)
    assert not raw.exists(f"{prefix}:inflight:api")
    assert raw.get(f"{prefix}:lease:odds") == b"elsewhere"

    again = LeaseStep("odds", "elsewhere", 30.0, NOW, take=True)
    found, stored = second.ledger.reserve_with(PROFILE, Priority.NORMAL, 1, NOW, lease=again)
    assert stored
    assert found is not None
    assert raw.hlen(f"{prefix}:inflight:api") == 1


def test_a_landed_lease_lapses_on_the_callers_clock_or_on_redis(
    open_backend: Callable[[], RedisBackend], raw: redis.Redis, prefix: str
) -> None:
    """Taken with the reservation, landed with the settle: the lease then names when it
    lapses (the settle's clock plus FOLLOW_BODY), and Redis expires it by then on its
    own clock too. Until then another process finds it held and cannot take it; from
    then on it may, as on SQLite. Its token still gives it back."""
    first, second = open_backend(), open_backend()
    key = f"{prefix}:lease:odds"
    take = LeaseStep("odds", "mine", 30.0, NOW, take=True)
    ticket, stored = first.ledger.reserve_with(PROFILE, Priority.NORMAL, 1, NOW, lease=take)
    assert stored
    assert raw.get(key) == b"mine"
    assert 29_000 < raw.pttl(key) <= 30_000

    land = LeaseStep("odds", "mine", 1.0, NOW + 2, take=False)
    settled = first.ledger.record(PROFILE, ticket, 1, QuotaReading(), NOW + 2, lease=land)
    assert settled.stored
    lapses = round((NOW + 3) * 1000)
    assert raw.get(key) == f"mine|{lapses}".encode()
    assert 0 < raw.pttl(key) <= 1000
    assert second.leases.held("odds", NOW + 2.5)
    assert not second.leases.held("odds", NOW + 3)

    early = LeaseStep("odds", "theirs", 30.0, NOW + 2.5, take=True)
    with pytest.raises(LeaseHeld):
        second.ledger.reserve_with(PROFILE, Priority.NORMAL, 1, NOW + 2.5, lease=early)
    late = LeaseStep("odds", "theirs", 30.0, NOW + 3, take=True)
    found, stored = second.ledger.reserve_with(PROFILE, Priority.NORMAL, 1, NOW + 3, lease=late)
    assert stored
    assert found is not None
    assert raw.get(key) == b"theirs"

    second.ledger.record(PROFILE, found, 1, QuotaReading(), NOW + 4, lease=land)
    assert raw.get(key) == b"theirs"  # another's token lands nothing
    landed = LeaseStep("odds", "theirs", 1.0, NOW + 4, take=False)
    second.ledger.record(PROFILE, None, 0, QuotaReading(), NOW + 4, lease=landed)
    assert raw.get(key) == f"theirs|{round((NOW + 5) * 1000)}".encode()
    first.leases.release("odds", "mine")
    assert raw.exists(key)
    first.leases.release("odds", "theirs")
    assert not raw.exists(key)
