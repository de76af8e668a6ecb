"""Review of the Redis ledger's one script a change (``_redis_books``): what a lost
reply, a retried call and old or foreign values in Redis do to the books. Against the
real Redis at 127.0.0.1:6379, each test under a prefix of its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from quotaflow import Priority, Quota, QuotaExhausted, QuotaReading
from quotaflow._info import Lease
from quotaflow._state._backend import LeaseStep
from quotaflow._state._leasing import Leasing
from quotaflow._state._redis import RedisBackend
from tests import test_policy
from tests.conftest import api_profile

NOW = test_policy.NOW
PROFILE = api_profile(quota=Quota(100), rates=())


def lose_next_reply(client: redis.Redis, command: str = "EVALSHA") -> list[str]:
    """The next ``command``'s reply is read off the wire and then lost, as when the
    connection drops after Redis ran it: redis-py sees a ConnectionError. Returns the
    commands sent since, in order."""
    sent: list[str] = []
    parse = client.parse_response
    armed = [True]

    def lossy(connection: Any, name: str, **options: Any) -> Any:
        sent.append(name)
        reply = parse(connection, name, **options)
        if armed[0] and name == command:
            armed[0] = False
            raise redis.ConnectionError("Connection closed by server.")
        return reply

    client.parse_response = lossy  # type: ignore[method-assign,assignment]
    return sent


def test_a_settle_whose_reply_was_lost_counts_once(
    open_backend: Callable[[], RedisBackend], raw: redis.Redis, prefix: str
) -> None:
    """The settle's script ran but its reply was lost (the connection dropped): redis-py
    sends the call again on a new connection. That call finds the books already
    changed; the settle must not be worked out again on them and counted twice."""
    backend = open_backend()
    ledger = backend.ledger
    ticket = ledger.reserve(PROFILE, Priority.NORMAL, 1, NOW)
    sent = lose_next_reply(ledger._client)  # type: ignore[attr-defined]
    ledger.settle(PROFILE, ticket, 1, QuotaReading(), NOW)
    assert sent[0] == "EVALSHA"
    assert raw.hget(f"{prefix}:quota:api", "remaining") == b"99"
    assert not raw.hlen(f"{prefix}:inflight:api")


def test_a_reservation_whose_reply_was_lost_is_one_reservation(
    open_backend: Callable[[], RedisBackend], raw: redis.Redis, prefix: str
) -> None:
    """The same for a reservation: one ticket in flight, settled once."""
    backend = open_backend()
    ledger = backend.ledger
    ledger.settle(PROFILE, ledger.reserve(PROFILE, Priority.NORMAL, 1, NOW), 1, QuotaReading(), NOW)
    lose_next_reply(ledger._client)  # type: ignore[attr-defined]
    ticket = ledger.reserve(PROFILE, Priority.NORMAL, 5, NOW)
    assert raw.hlen(f"{prefix}:inflight:api") == 1
    assert ledger.settle(PROFILE, ticket, 5, QuotaReading(), NOW) == 94


@pytest.mark.parametrize(
    "value", ["other|²", "other|\uff11\uff12", "other|", "other|soon", "other"]
)
def test_a_lease_of_a_value_not_ours_is_held_until_redis_expires_it(
    open_backend: Callable[[], RedisBackend], raw: redis.Redis, prefix: str, value: str
) -> None:
    """A lease whose value names no time this version wrote (an older quotaflow's bare
    token, or garbage after the bar) is held until Redis expires it, by the waiters'
    check as by the script's: never an error, never lapsed early."""
    backend = open_backend()
    raw.set(f"{prefix}:lease:odds", value, px=30_000)
    assert backend.leases.held("odds", NOW)


def test_two_processes_reserving_the_last_unit_one_is_refused(
    open_backend: Callable[[], RedisBackend], raw: redis.Redis, prefix: str
) -> None:
    """Both processes saw one unit left (their books cached); the first takes it, the
    second's call on its cached books writes nothing and the change, worked out again
    on Redis's books, refuses: the unit is spent once."""
    first, second = open_backend(), open_backend()
    first.ledger.settle(PROFILE, None, 0, QuotaReading(remaining=1), NOW)
    second.ledger.settle(PROFILE, None, 0, QuotaReading(remaining=1), NOW)
    assert first.ledger.reserve(PROFILE, Priority.CRITICAL, 1, NOW) is not None
    with pytest.raises(QuotaExhausted):
        second.ledger.reserve(PROFILE, Priority.CRITICAL, 1, NOW)
    assert raw.hlen(f"{prefix}:inflight:api") == 1


def test_a_landed_lease_is_taken_again_by_its_token_or_once_lapsed_in_a_trip_of_its_own(
    open_backend: Callable[[], RedisBackend], raw: redis.Redis, prefix: str
) -> None:
    """A lease taken in a round trip of its own (a request that reserves nothing: a
    method the profile does not limit) follows the script's rules, as on SQLite: its
    own landed lease is the client's next leader's at once (not 1 s later), and one
    lapsed on the caller's clock is anyone's, whatever Redis has not expired yet."""
    first, second = open_backend(), open_backend()
    key = f"{prefix}:lease:odds"
    leasing = Leasing(first.leases, first.ledger)
    leasing.take(Lease("odds", "mine"), NOW)
    land = LeaseStep("odds", "mine", 1.0, NOW, take=False)
    assert first.ledger.record(PROFILE, None, 0, QuotaReading(), NOW, lease=land).stored
    assert raw.get(key) == f"mine|{round((NOW + 1) * 1000)}".encode()

    leasing.take(Lease("odds", "mine"), NOW + 0.1)  # the same token: no LeaseHeld
    assert raw.get(key) == b"mine"
    assert 29_000 < raw.pttl(key) <= 30_000

    first.ledger.record(PROFILE, None, 0, QuotaReading(), NOW + 0.2, lease=land)
    assert second.leases.acquire("odds", 30.0, NOW + 0.5, "theirs") is None
    assert second.leases.acquire("odds", 30.0, NOW + 1.0, "theirs") == "theirs"
    assert raw.get(key) == b"theirs"
    assert first.leases.acquire("odds", 30.0, NOW + 1.0) is None
