"""Behaviour 2: short-window rates wait, the monthly quota refuses, headers are the truth."""

from __future__ import annotations

import httpx
import pytest
import respx

import quotaflow
from quotaflow import Priority, Quota, Rate

from .conftest import BASE, api_profile, info


def answer_with(**headers: str) -> httpx.Response:
    return httpx.Response(200, json={"ok": True}, headers=headers)


# A request counts for `per` seconds and one millisecond (stamps are whole milliseconds,
# counted inclusively so that no real window of `per` seconds ever holds more).
TICK = 0.001


def test_short_window_waits_then_admits(stack, router: respx.Router, sleeps) -> None:
    """At 2/s, a third request at the same instant waits until the first leaves the window."""
    route = router.get(url__startswith=f"{BASE}/items").mock(return_value=answer_with())
    client = stack(profiles=[api_profile(rates=(Rate(2, per=1.0),))])

    waited = [info(client.get(f"{BASE}/items/{n}")).waited for n in range(3)]

    assert route.call_count == 3
    assert waited == [0.0, 0.0, pytest.approx(1 + TICK)]
    assert sleeps == [pytest.approx(1 + TICK)]


def test_a_smaller_burst_spreads_requests(stack, router: respx.Router, sleeps) -> None:
    """At 2/s with burst 1, the second request waits half a second (the token bucket)."""
    route = router.get(url__startswith=f"{BASE}/items").mock(return_value=answer_with())
    client = stack(profiles=[api_profile(rates=(Rate(2, per=1.0, burst=1),))])

    waited = [info(client.get(f"{BASE}/items/{n}")).waited for n in range(3)]

    assert route.call_count == 3
    # The third: its token is due at 1.0 s, the first leaves the window at 1.001 s.
    assert waited == [0.0, pytest.approx(0.5, abs=1e-5), pytest.approx(0.5 + TICK, abs=1e-5)]


def test_wait_beyond_max_wait_raises_rate_limited(stack, router: respx.Router, sleeps) -> None:
    """LOW never waits (max wait 0): it is refused, and nothing reaches upstream."""
    route = router.get(url__startswith=f"{BASE}/items").mock(return_value=answer_with())
    client = stack(profiles=[api_profile(rates=(Rate(1, per=1.0, burst=1),))])
    client.get(f"{BASE}/items/1")

    with pytest.raises(quotaflow.RateLimited) as refused:
        client.get(f"{BASE}/items/2", extensions={"priority": "low"})

    assert route.call_count == 1
    assert refused.value.retry_after == pytest.approx(1 + TICK)
    assert isinstance(refused.value, httpx.TransportError)
    assert sleeps == []


def test_priority_decides_max_wait(stack, router: respx.Router, sleeps) -> None:
    """The same wait is refused for NORMAL (5 s) but accepted for CRITICAL (30 s)."""
    router.get(url__startswith=f"{BASE}/items").mock(return_value=answer_with())
    client = stack(profiles=[api_profile(rates=(Rate(1, per=10.0, burst=1),))])
    client.get(f"{BASE}/items/1")

    with pytest.raises(quotaflow.RateLimited):
        client.get(f"{BASE}/items/2")
    with quotaflow.priority("critical"):
        admitted = client.get(f"{BASE}/items/3")

    assert info(admitted).waited == pytest.approx(10 + TICK)
    assert info(admitted).priority is Priority.CRITICAL


def test_reserve_refuses_normal_but_not_critical(stack, router: respx.Router) -> None:
    """With 10 units, NORMAL must leave 20% (2) untouched; CRITICAL may spend to 0."""
    route = router.get(url__startswith=f"{BASE}/items").mock(return_value=answer_with())
    client = stack(profiles=[api_profile(quota=Quota(10), rates=())])

    for n in range(8):
        assert client.get(f"{BASE}/items/{n}").status_code == 200
    with pytest.raises(quotaflow.QuotaExhausted) as refused:
        client.get(f"{BASE}/items/8")
    for n in range(8, 10):
        critical = client.get(f"{BASE}/items/{n}", extensions={"priority": Priority.CRITICAL})
    with pytest.raises(quotaflow.QuotaExhausted):
        client.get(f"{BASE}/items/10", extensions={"priority": "critical"})

    assert route.call_count == 10
    assert refused.value.remaining == 2
    assert refused.value.cost == 1
    assert info(critical).remaining == 0


def test_headers_correct_the_ledger(stack, router: respx.Router) -> None:
    """The API's own count wins: remaining 3 of 100 refuses NORMAL at once."""
    route = router.get(url__startswith=f"{BASE}/items").mock(
        return_value=answer_with(**{"x-remaining": "3", "x-used": "97", "x-cost": "1"})
    )
    client = stack()

    first = client.get(f"{BASE}/items/1")
    with pytest.raises(quotaflow.QuotaExhausted):
        client.get(f"{BASE}/items/2")

    assert route.call_count == 1
    assert info(first).remaining == 3
    assert info(first).cost == 1


def test_reported_cost_wins_over_estimate(stack, router: respx.Router) -> None:
    """cost is what the API reports it charged, else the profile's estimate."""
    router.get(f"{BASE}/free").mock(return_value=answer_with(**{"x-cost": "0"}))
    router.get(f"{BASE}/dear").mock(return_value=answer_with())
    client = stack(profiles=[api_profile(cost=lambda request: 3)])

    assert info(client.get(f"{BASE}/free")).cost == 0
    dear = info(client.get(f"{BASE}/dear"))

    assert dear.cost == 3
    assert dear.remaining == 97


@pytest.mark.parametrize("bad", ["abc", "", "1e999", "nan", "--5"])
def test_malformed_quota_headers_fall_back_to_the_estimate(stack, router, bad: str) -> None:
    """Garbage in x-remaining is ignored: no crash, the estimate is charged."""
    router.get(url__startswith=f"{BASE}/items").mock(
        return_value=answer_with(**{"x-remaining": bad, "x-used": bad, "x-cost": bad})
    )
    client = stack()

    first = info(client.get(f"{BASE}/items/1"))
    second = info(client.get(f"{BASE}/items/2"))

    assert (first.remaining, second.remaining) == (99, 98)
    assert first.cost == 1


def test_api_saying_quota_is_gone_sets_remaining_to_zero(stack, router: respx.Router) -> None:
    """A response the profile classifies as quota_exhausted raises QuotaExhausted."""
    route = router.get(f"{BASE}/items/1").respond(401, json={"error": "QUOTA gone"})
    other = router.get(f"{BASE}/items/2").mock(return_value=answer_with())
    client = stack()

    with pytest.raises(quotaflow.QuotaExhausted) as gone:
        client.get(f"{BASE}/items/1")
    with pytest.raises(quotaflow.QuotaExhausted):
        client.get(f"{BASE}/items/2", extensions={"priority": "critical"})

    assert gone.value.remaining == 0
    assert route.call_count == 1
    assert other.call_count == 0


def test_quota_state_survives_a_restart(stack, router: respx.Router) -> None:
    """A new client on the same state_dir knows what the old one spent."""
    router.get(url__startswith=f"{BASE}/items").mock(return_value=answer_with())
    profiles = [api_profile(quota=Quota(10), rates=())]
    first = stack(profiles=profiles)
    for n in range(8):
        first.get(f"{BASE}/items/{n}")
    first.close()

    second = stack(profiles=profiles)
    with pytest.raises(quotaflow.QuotaExhausted):
        second.get(f"{BASE}/items/new")


def test_connect_error_gives_units_back(stack, router: respx.Router) -> None:
    """A request that never left (connect error) spends nothing."""
    router.get(f"{BASE}/down").mock(side_effect=httpx.ConnectError("refused"))
    router.get(f"{BASE}/up").mock(return_value=answer_with())
    client = stack(profiles=[api_profile(quota=Quota(10), rates=())])

    for _ in range(3):
        with pytest.raises(httpx.ConnectError):
            client.get(f"{BASE}/down")

    assert info(client.get(f"{BASE}/up")).remaining == 9


def test_read_timeout_is_charged(stack, router: respx.Router) -> None:
    """A request that may have reached the API (read timeout) is charged its estimate."""
    router.get(f"{BASE}/slow").mock(side_effect=httpx.ReadTimeout("slow"))
    router.get(f"{BASE}/up").mock(return_value=answer_with())
    client = stack(profiles=[api_profile(quota=Quota(10), rates=())])

    with pytest.raises(httpx.ReadTimeout):
        client.get(f"{BASE}/slow")

    assert info(client.get(f"{BASE}/up")).remaining == 8
