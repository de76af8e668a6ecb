"""Data down, records up (issue 12): each layer hands what it did up as one frozen
record, and the fallback assembles ResponseInfo from them, on answers and on errors,
including the paths where hishel stands between the layers (a revalidating 304)."""

from __future__ import annotations

import httpx
import pytest
import respx

import quotaflow
from quotaflow import Priority, Quota
from quotaflow._info import Cached, CacheStatus, Route
from quotaflow._transports._core import Judged, Policy, outcome

from .conftest import BASE, api_profile, info

URL = f"{BASE}/odds"
NOW = 1_700_000_000.0


def _route(**changes: object) -> Route:
    profile = api_profile(**changes)
    url = httpx.URL(URL)
    return Route(profile, Priority.NORMAL, URL, url, url, "key", {})


def test_a_stale_answer_reports_what_the_failed_attempt_cost(stack, router, traveller) -> None:
    """A read timeout may have reached the API: it is charged its estimate, and the
    stale answer that stands in for it says so (the rate-limit layer's record rides up
    on the error)."""
    route = router.get(URL).respond(200, json={"v": 1}, headers={"x-cost": "1"})
    client = stack(profiles=[api_profile(quota=Quota(100))])
    assert info(client.get(URL)).cost == 1
    traveller.shift(61)
    route.mock(side_effect=httpx.ReadTimeout("slow"))

    stale = client.get(URL)

    assert info(stale).cache == "stale"
    assert (info(stale).cost, info(stale).remaining) == (1, 98)
    assert route.call_count == 2


def test_a_revalidation_reports_what_the_304_cost(stack, router, traveller) -> None:
    """hishel answers a revalidation from storage and drops the 304's extensions: the
    caching layer still hands up what the 304 cost, and the quota it left."""
    route = router.get(URL).respond(
        200,
        json={"v": 1},
        headers={"etag": '"a"', "cache-control": "no-cache", "x-cost": "1", "x-remaining": "50"},
    )
    client = stack(profiles=[api_profile(freshness=None, default_ttl=None)])
    first = client.get(URL)
    assert (info(first).cost, info(first).stored) == (1, True), info(first)
    seen: list[str | None] = []

    def not_modified(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("if-none-match"))
        return httpx.Response(304, headers={"x-cost": "2", "x-remaining": "48"})

    route.mock(side_effect=not_modified)

    again = client.get(URL)

    assert again.json() == {"v": 1}
    assert seen == ['"a"']
    assert (info(again).cache, info(again).cost, info(again).remaining) == (
        "revalidated",
        2,
        48,
    )


def test_judge_passes_the_ttl_up_as_a_value() -> None:
    """The profile's freshness decides the lifetime once: written for hishel as
    max-age, and handed up as a number with its reason."""
    policy = Policy(quotaflow.Clock(time=lambda: NOW))
    request = httpx.Request("GET", URL)
    response = httpx.Response(200, json={}, request=request)

    judged = policy.judge(_route(), request, response, "ok")

    assert judged == Judged(60.0, "fresh 60 s by the freshness rule of profile api", True)
    assert response.headers["cache-control"] == "max-age=60"


def test_judge_leaves_the_answers_own_lifetime_to_its_headers() -> None:
    """No rule gives a lifetime: the answer's own Cache-Control is the value handed up."""
    policy = Policy(quotaflow.Clock(time=lambda: NOW))
    request = httpx.Request("GET", URL)
    response = httpx.Response(200, headers={"cache-control": "max-age=30"}, request=request)

    judged = policy.judge(_route(freshness=None), request, response, "ok")

    assert judged == Judged(30.0, "fresh 30 s by the answer's Cache-Control", True)


@pytest.mark.parametrize(
    ("caching", "headers", "expected"),
    [
        (
            {"from_cache": True, "revalidated": False, "stored": True},
            {"cache-control": "max-age=60"},
            Cached(CacheStatus.HIT, 60.0, True, "storage", "fresh in storage"),
        ),
        (
            {"from_cache": False, "revalidated": False, "stored": True},
            {"cache-control": "max-age=60", "content-length": "2048"},
            Cached(CacheStatus.MISS, 60.0, False, None, "the body is over max_body (1024 bytes)"),
        ),
        (
            {"from_cache": False, "revalidated": False, "stored": True},
            {"cache-control": "max-age=60", "content-length": "10"},
            Cached(CacheStatus.MISS, 60.0, True, None, "judged"),
        ),
    ],
)
def test_outcome_reads_hishels_status_with_the_judged_ttl(
    caching: dict[str, bool], headers: dict[str, str], expected: Cached
) -> None:
    """The caching layer's record: hishel's status, and the lifetime judged below it."""
    response = httpx.Response(200, headers=headers, extensions={"caching": caching})

    found = outcome(_route(), response, Judged(60.0, "judged", True), "ok", 1024, NOW)

    assert found == expected


def test_an_unprofiled_miss_costs_nothing_and_says_why(stack) -> None:
    """Not every request is profiled: its answer still carries a full ResponseInfo."""
    router = respx.Router(assert_all_called=False)
    router.get("https://plain.example/x").respond(200, headers={"cache-control": "max-age=5"})
    client = stack(transport=httpx.MockTransport(router.handler))

    response = client.get("https://plain.example/x")

    assert (info(response).profile, info(response).cache, info(response).cost) == (
        "default",
        "miss",
        0,
    )
    assert info(response).reason == "fresh 5 s by the answer's Cache-Control"
    assert info(client.get("https://plain.example/x")).cache == "hit"
