"""Behaviour 4: when upstream fails or the limiter refuses, a stored answer, marked stale."""

from __future__ import annotations

import httpx
import pytest
import respx

import quotaflow
from quotaflow import Quota, Rate

from .conftest import BASE, api_profile, info

URL = f"{BASE}/odds"


def stored_then(stack, router: respx.Router, traveller, failure, **profile_changes):
    """Store a good answer, let it go stale (61 s), then make upstream fail."""
    route = router.get(URL).respond(200, json={"price": 1.91}, headers={"x-cost": "1"})
    client = stack(profiles=[api_profile(**profile_changes)])
    client.get(URL)
    traveller.shift(61)
    if isinstance(failure, httpx.Response):
        route.mock(return_value=failure)
    else:
        route.mock(side_effect=failure)
    return client, route


def test_stale_on_connect_error(stack, router, traveller) -> None:
    """ConnectError: the stored answer comes back with Age, marked stale."""
    client, route = stored_then(stack, router, traveller, httpx.ConnectError("down"))

    response = client.get(URL)

    assert response.status_code == 200
    assert response.json() == {"price": 1.91}
    assert response.headers["age"] == "61"
    assert info(response).cache == "stale"
    assert info(response).stale_reason == "network"
    assert info(response).age == pytest.approx(61)
    assert info(response).ttl == 60
    assert route.call_count == 2


def test_stale_on_503(stack, router, traveller) -> None:
    """A 503 from a profiled API is answered stale; the 503 is not stored."""
    client, route = stored_then(stack, router, traveller, httpx.Response(503, text="busy"))

    response = client.get(URL)
    again = client.get(URL)

    assert response.json() == {"price": 1.91}
    assert info(response).stale_reason == "status_503"
    assert info(again).cache == "stale"
    assert route.call_count == 3


def test_stale_on_timeout_and_429(stack, router, traveller) -> None:
    """Timeouts and 429s name their cause."""
    client, route = stored_then(stack, router, traveller, httpx.ReadTimeout("slow"))
    assert info(client.get(URL)).stale_reason == "timeout"

    route.mock(return_value=httpx.Response(429, text="slow down"))
    assert info(client.get(URL)).stale_reason == "status_429"


def test_beyond_max_stale_the_failure_stands(stack, router, traveller) -> None:
    """Past max_stale, the error is raised (or the error response returned)."""
    client, route = stored_then(stack, router, traveller, httpx.ConnectError("down"), max_stale=30)
    traveller.shift(30)  # now 91 s old: 31 s stale

    with pytest.raises(httpx.ConnectError):
        client.get(URL)
    route.mock(return_value=httpx.Response(503, text="busy"))
    response = client.get(URL)

    assert response.status_code == 503
    assert response.text == "busy"
    assert info(response).cache == "miss"


def test_no_stored_answer_returns_the_upstream_error(stack, router) -> None:
    """Nothing stored: a 500 comes back as it was."""
    router.get(URL).respond(500, text="boom")
    client = stack()

    response = client.get(URL)

    assert response.status_code == 500
    assert response.text == "boom"
    assert info(response).stale_reason is None


def test_error_in_disguise_is_never_stored(stack, router, traveller) -> None:
    """A 200 the profile classifies as an error is not stored and gets the stale answer."""
    disguised = httpx.Response(200, json={"errors": {"token": "bad"}, "response": []})
    client, route = stored_then(stack, router, traveller, disguised)

    response = client.get(URL)

    assert response.json() == {"price": 1.91}
    assert info(response).stale_reason == "error_body"
    route.mock(return_value=httpx.Response(200, json={"price": 2.05}, headers={"x-cost": "1"}))
    assert client.get(URL).json() == {"price": 2.05}


def test_error_in_disguise_without_stored_answer_is_returned(stack, router) -> None:
    """With nothing stored, the disguised error reaches the caller, and is not stored."""
    route = router.get(URL).respond(200, json={"errors": {"plan": "x"}, "response": []})
    client = stack()

    first = client.get(URL)
    client.get(URL)

    assert first.json()["errors"] == {"plan": "x"}
    assert route.call_count == 2


def test_quota_refusal_is_answered_stale_for_low_priority(stack, router, traveller) -> None:
    """Priority-aware: under quota pressure LOW gets the stale answer, CRITICAL goes upstream."""
    route = router.get(URL).respond(
        200, json={"price": 1.91}, headers={"x-remaining": "30", "x-used": "70"}
    )
    client = stack(profiles=[api_profile(quota=Quota(100))])
    client.get(URL)  # 30 of 100 left: inside LOW's 50% reserve
    traveller.shift(61)

    low = client.get(URL, extensions={"priority": "low"})
    critical = client.get(URL, extensions={"priority": "critical"})

    assert info(low).cache == "stale"
    assert info(low).stale_reason == "quota"
    assert (info(low).cost, info(low).remaining) == (0, 30)
    assert info(critical).cache == "miss"
    assert route.call_count == 2


def test_rate_limit_refusal_is_answered_stale(stack, router, traveller) -> None:
    """A LOW request that would have to wait is answered stale instead."""
    route = router.get(url__startswith=BASE).respond(200, json={"n": 1})
    client = stack(profiles=[api_profile(rates=(Rate(1, per=600.0, burst=1),))])
    client.get(URL)
    traveller.shift(61)

    response = client.get(URL, extensions={"priority": "low"})

    assert info(response).stale_reason == "rate_limit"
    assert route.call_count == 1


def test_unsafe_methods_never_get_stale_answers(stack, router) -> None:
    """A failing POST raises, whatever is stored."""
    router.post(URL).mock(side_effect=httpx.ConnectError("down"))
    client = stack()

    with pytest.raises(httpx.ConnectError):
        client.request("POST", URL)


def test_unprofiled_hosts_have_no_fallback(stack, router, traveller) -> None:
    """The default profile has max_stale 0: upstream errors stand."""
    route = router.get("https://example.org/x").respond(
        200, text="v", headers={"cache-control": "max-age=1"}
    )
    client = stack()
    client.get("https://example.org/x")
    traveller.shift(5)
    route.mock(side_effect=httpx.ConnectError("down"))

    with pytest.raises(httpx.ConnectError):
        client.get("https://example.org/x")


def test_quota_exhausted_without_stored_answer_raises(stack, router) -> None:
    """Nothing stored and the quota refuses: QuotaExhausted reaches the caller."""
    router.get(URL).respond(200, json={}, headers={"x-remaining": "0", "x-used": "100"})
    client = stack()
    client.get(f"{URL}?page=1")

    with pytest.raises(quotaflow.QuotaExhausted):
        client.get(f"{URL}?page=2")
