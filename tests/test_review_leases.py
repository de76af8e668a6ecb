"""Correctness review of the single-flight lease landed with the settle (issue 16): a
lease this process landed must not hold up this process's own next requests."""

from __future__ import annotations

from collections.abc import Callable

import respx

from .conftest import BASE, Harness, api_profile


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
