"""Any API by its rate-limit headers (issue 11): a short window is never the quota.

The upstream here is a stateful mock of a fixed-window API on the test clock, so
what it says of its window changes as requests are made and time moves."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import httpx
import pytest
import respx
import time_machine

import quotaflow
from quotaflow_ratelimit_headers import profile_for

from .conftest import Harness, info

HOST = "api.any.test"
URL = f"https://{HOST}/items"


def fixed_window(limit: int, per: int, headers: Callable[[int, float], dict[str, str]]) -> object:
    """A respx side effect: ``limit`` requests per calendar window of ``per`` seconds,
    429 beyond; ``headers(remaining, reset_epoch)`` says so on every answer."""
    counts: dict[float, int] = {}

    def answer(request: httpx.Request) -> httpx.Response:
        start = math.floor(time.time() / per) * per
        counts[start] = counts.get(start, 0) + 1
        remaining = limit - counts[start]
        status = 200 if remaining >= 0 else 429
        return httpx.Response(
            status, json={"n": counts[start]}, headers=headers(max(remaining, 0), start + per)
        )

    return answer


def github(remaining: int, reset: float) -> dict[str, str]:
    """GitHub-style X-RateLimit-* with the reset as epoch seconds."""
    return {
        "X-RateLimit-Limit": "60",
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(int(reset)),
    }


def github_seconds(remaining: int, reset: float) -> dict[str, str]:
    """X-RateLimit-* with the reset as seconds to wait."""
    return {
        "X-RateLimit-Limit": "60",
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(math.ceil(reset - time.time())),
    }


def ietf(remaining: int, reset: float) -> dict[str, str]:
    """IETF draft fields: 5 per 30 s."""
    return {
        "RateLimit-Policy": '"default";q=5;w=30',
        "RateLimit": f'"default";r={remaining};t={math.ceil(reset - time.time())}',
    }


@pytest.mark.parametrize(
    ("limit", "per", "headers"),
    [(60, 60, github), (60, 60, github_seconds), (5, 30, ietf)],
    ids=["x-ratelimit-epoch", "x-ratelimit-seconds", "ietf"],
)
def test_a_short_window_waits_and_is_never_the_quota(
    stack: Callable[..., Harness],
    router: respx.Router,
    sleeps: list[float],
    traveller: time_machine.Traveller,
    limit: int,
    per: int,
    headers: Callable[[int, float], dict[str, str]],
) -> None:
    """Every request of the window goes (request 48 of 60 too: no QuotaExhausted); the
    next one is held until the window resets: refused as RateLimited when its priority
    may not wait that long, sent after waiting when it may. The quota is counted by
    the ledger alone (1000 a day), never taken from the window's fields."""
    route = router.get(host=HOST).mock(side_effect=fixed_window(limit, per, headers))
    profile = profile_for("any", HOST, quota=1000, quota_period="day")
    client = stack(profiles=[profile])

    for n in range(limit):
        response = client.get(f"{URL}/{n}")
        assert response.status_code == 200
    assert info(response).remaining == 1000 - limit
    assert route.call_count == limit

    with pytest.raises(quotaflow.RateLimited) as refused:
        client.get(f"{URL}/next")
    assert refused.value.retry_after == pytest.approx(per)
    assert not isinstance(refused.value, quotaflow.QuotaExhausted)
    assert (route.call_count, sleeps) == (limit, [])

    traveller.shift(per - 3)
    response = client.get(f"{URL}/next")

    assert response.status_code == 200
    assert sleeps == [pytest.approx(3)]
    assert route.call_count == limit + 1
    assert info(response).remaining == 1000 - limit - 1
