"""Correctness review of the single-flight lease landed with the settle (issue 16): a
lease this process landed must not hold up this process's own next requests."""

from __future__ import annotations

from collections.abc import Callable

import respx

from .conftest import BASE, Harness, api_profile
from .test_redis import broken

__all__ = ["broken"]  # the fixture: Redis cut off at run time


def test_a_landed_lease_does_not_hold_up_the_next_request_of_its_own_process(
    stack: Callable[..., Harness], router: respx.Router, sleeps: list[float]
) -> None:
    """An answer stored but never fresh (fresh 0 s, with a validator) is revalidated on
    every request: the second request, right after the first, goes upstream at once; it
    does not wait for the first's landed lease to lapse (its own process's)."""
    route = router.get(f"{BASE}/revalidated").respond(200, json={"a": 1}, headers={"etag": '"v1"'})
    client = stack(profiles=[api_profile(freshness=lambda request, response, now: 0)])
    client.get(f"{BASE}/revalidated")
    client.get(f"{BASE}/revalidated")
    assert route.call_count == 2
    assert sleeps == []


def test_a_forced_refresh_right_after_a_miss_goes_at_once(
    stack: Callable[..., Harness], router: respx.Router, sleeps: list[float]
) -> None:
    """The caller asks for a fresh answer (Cache-Control: no-cache) just after a miss on
    the same URL: it goes upstream at once, without waiting on its own process's lease."""
    route = router.get(f"{BASE}/forced").respond(200, json={"a": 1})
    client = stack()
    client.get(f"{BASE}/forced")
    client.get(f"{BASE}/forced", headers={"cache-control": "no-cache"})
    assert route.call_count == 2
    assert sleeps == []


def test_a_lease_held_elsewhere_leaves_no_reservation_behind_on_local_state(
    stack: Callable[..., Harness],
    router: respx.Router,
    sleeps: list[float],
    prefix: str,
    broken: Callable[[], None],
) -> None:
    """Redis is down and fails open: the reservation goes to the local state, the lease
    is asked for on its own after it. Held by another process, the request waits and
    fetches for itself: the quota is charged for the one call it made, and no
    reservation is left held (after a first request, 98 left, then 97)."""
    from quotaflow._info import storage_key
    from quotaflow._plan import _PARTS

    from .conftest import START, info
    from .stub_server import REDIS_URL

    route = router.get(url__startswith=f"{BASE}/held").respond(200, json={})
    client = stack(redis_url=REDIS_URL, redis_prefix=prefix, redis_fail="open")
    client.get(f"{BASE}/held-first")
    broken()
    backend = _PARTS[client.client].backend
    key = storage_key(f"{BASE}/held")
    assert backend.leases.acquire(key, 30.0, START.timestamp(), "elsewhere") == "elsewhere"
    response = client.get(f"{BASE}/held", extensions={"timeout": {"pool": 0.2}})
    assert sum(sleeps) >= 0.2  # it waited for the other process, within its limit
    assert route.call_count == 2
    assert info(response).remaining == 98
    assert info(client.get(f"{BASE}/held-next")).remaining == 97


def test_a_landed_lease_holds_no_one_up_for_an_answer_they_cannot_take(
    stack: Callable[..., Harness], router: respx.Router, sleeps: list[float]
) -> None:
    """Another client on the same state (as another process would) asks right after an
    answer that is stored but never fresh (revalidated before each use): there is
    nothing in storage for it to wait for, so it goes at once instead of waiting for the
    first client's landed lease to lapse."""
    route = router.get(f"{BASE}/revalidated").respond(200, json={"a": 1}, headers={"etag": '"v1"'})
    profiles = [api_profile(freshness=lambda request, response, now: 0)]
    stack(profiles=profiles).get(f"{BASE}/revalidated")
    stack(profiles=profiles).get(f"{BASE}/revalidated")
    assert route.call_count == 2
    assert sleeps == []
