"""Transient failures: retries with backoff and Retry-After, and the circuit breaker."""

from __future__ import annotations

import httpx
import pytest

import quotaflow
from quotaflow import Quota

from .conftest import BASE, api_profile, info

URL = f"{BASE}/odds"


def answers(*results: httpx.Response | Exception):
    """An upstream that gives these answers in turn (the last one forever)."""
    queue = list(results)

    def answer(request: httpx.Request) -> httpx.Response:
        result = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(result, Exception):
            raise result
        return result

    return answer


def retrying(**changes):
    return api_profile(**{"retries": 2, "quota": Quota(100), **changes})


def test_503_is_retried_with_exponential_backoff(stack, router, sleeps) -> None:
    """Two 503s then a 200: three calls, each charged, full-jitter waits of 0.25 then 0.5 s."""
    route = router.get(URL).mock(
        side_effect=answers(httpx.Response(503), httpx.Response(503), httpx.Response(200, json={}))
    )
    client = stack(profiles=[retrying()])

    response = client.get(URL)

    assert response.status_code == 200
    assert route.call_count == 3
    assert sleeps == [0.25, 0.5]  # draw 0.5 of 0.5 * 2**attempt
    assert info(response).cost == 3
    assert info(response).remaining == 97
    assert info(response).waited == pytest.approx(0.75)


def test_retry_after_seconds_and_date_win_over_backoff(stack, router, sleeps) -> None:
    """Retry-After: 2, then an HTTP date 3 s ahead: those are the waits."""
    route = router.get(URL).mock(
        side_effect=answers(
            httpx.Response(503, headers={"retry-after": "2"}),
            httpx.Response(503, headers={"retry-after": "Sun, 29 Nov 2026 12:00:05 GMT"}),
            httpx.Response(200, json={}),
        )
    )
    client = stack(profiles=[retrying()])

    assert client.get(URL).status_code == 200
    assert route.call_count == 3
    assert sleeps == [2.0, 3.0]  # the clock stood at 12:00:02 after the first wait


def test_a_429_with_retry_after_pauses_the_whole_profile(stack, router, sleeps) -> None:
    """After a 429 asking for 4 s, another request of the profile waits for it too."""
    router.get(URL).mock(
        side_effect=answers(
            httpx.Response(429, headers={"retry-after": "4"}), httpx.Response(200, json={})
        )
    )
    other = router.get(f"{BASE}/other").respond(200, json={})
    client = stack(profiles=[retrying(retries=0)])

    first = client.get(URL)
    second = client.get(f"{BASE}/other")

    assert first.status_code == 429
    assert other.call_count == 1
    assert sleeps == [4.0]
    assert info(second).waited == pytest.approx(4.0)


def test_connect_errors_are_retried_and_cost_nothing(stack, router, sleeps) -> None:
    """A refused connection never reached the API: retried, not charged."""
    route = router.get(URL).mock(
        side_effect=answers(httpx.ConnectError("refused"), httpx.Response(200, json={}))
    )
    client = stack(profiles=[retrying()])

    response = client.get(URL)

    assert route.call_count == 2
    assert info(response).cost == 1
    assert info(response).remaining == 99


def test_retries_give_up_and_the_fallback_answers(stack, router, traveller, sleeps) -> None:
    """Three 503s in a row: the stored answer comes back, stale."""
    route = router.get(URL).respond(200, json={"v": 1})
    client = stack(profiles=[retrying()])
    client.get(URL)
    traveller.shift(61)
    route.respond(503)

    response = client.get(URL)

    assert route.call_count == 4
    assert info(response).stale_reason == "status_503"
    assert response.json() == {"v": 1}


@pytest.mark.parametrize(
    ("method", "priority", "retry_after"),
    [("POST", "normal", None), ("GET", "low", None), ("GET", "normal", "10")],
)
def test_no_retry_without_idempotence_or_budget(
    stack, router, sleeps, method, priority, retry_after
):
    """POST is never retried; LOW (max wait 0) never; nor a wait past the max wait (5 s)."""
    headers = {"retry-after": retry_after} if retry_after else {}
    route = router.route(method=method, url=URL).respond(503, headers=headers)
    client = stack(profiles=[retrying(limited_methods=("GET", "POST"))])

    response = client.request(method, URL, extensions={"priority": priority})

    assert response.status_code == 503
    assert route.call_count == 1
    assert sleeps == []


def test_circuit_opens_after_five_failures_then_probes(stack, router, traveller) -> None:
    """Five failures in a row open the circuit; after the cool-down one probe closes it."""
    route = router.get(url__startswith=BASE).mock(side_effect=httpx.ConnectError("down"))
    client = stack(profiles=[api_profile(breaker_threshold=5, breaker_cooldown=30)])
    for n in range(5):
        with pytest.raises(httpx.ConnectError):
            client.get(f"{BASE}/{n}")

    with pytest.raises(quotaflow.CircuitOpen) as refused:
        client.get(f"{BASE}/next")
    assert route.call_count == 5
    assert refused.value.retry_after == pytest.approx(30)

    traveller.shift(30)
    route.mock(side_effect=None, return_value=httpx.Response(200, json={}))
    assert client.get(f"{BASE}/probe").status_code == 200
    assert client.get(f"{BASE}/after").status_code == 200
    assert route.call_count == 7


def test_a_failed_probe_opens_the_circuit_again(stack, router, traveller) -> None:
    """The probe fails: another full cool-down before the next one."""
    route = router.get(url__startswith=BASE).mock(side_effect=httpx.ConnectError("down"))
    client = stack(profiles=[api_profile(breaker_threshold=2, breaker_cooldown=10)])
    for n in range(2):
        with pytest.raises(httpx.ConnectError):
            client.get(f"{BASE}/{n}")
    traveller.shift(10)

    with pytest.raises(httpx.ConnectError):
        client.get(f"{BASE}/probe")
    traveller.shift(9)
    with pytest.raises(quotaflow.CircuitOpen):
        client.get(f"{BASE}/still-open")

    assert route.call_count == 3


def test_open_circuit_answers_stale_at_once(stack, router, traveller) -> None:
    """With an answer stored, an open circuit serves it stale without asking upstream."""
    route = router.get(url__startswith=BASE).respond(200, json={"v": 1})
    client = stack(profiles=[api_profile(breaker_threshold=2)])
    client.get(URL)
    traveller.shift(61)
    route.respond(500)
    client.get(f"{BASE}/a")
    client.get(f"{BASE}/b")

    response = client.get(URL)

    assert info(response).stale_reason == "circuit_open"
    assert response.json() == {"v": 1}
    assert route.call_count == 3


def test_successes_reset_the_failure_count(stack, router) -> None:
    """Failures must be consecutive to open the circuit."""
    route = router.get(url__startswith=BASE).mock(
        side_effect=answers(
            httpx.Response(500),
            httpx.Response(500),
            httpx.Response(200, json={}),
            httpx.Response(500),
            httpx.Response(500),
            httpx.Response(200, json={}),
        )
    )
    client = stack(profiles=[api_profile(breaker_threshold=3)])

    statuses = [client.get(f"{BASE}/{n}").status_code for n in range(6)]

    assert statuses == [500, 500, 200, 500, 500, 200]
    assert route.call_count == 6
