"""Behaviour 3: hishel's RFC 9111 cache plus the profile's freshness rule."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
import respx

from .conftest import BASE, START, api_profile, info

URL = f"{BASE}/odds"


def test_rule_sets_exact_freshness(stack, router: respx.Router, traveller) -> None:
    """Fresh for exactly the rule's 60 s: a hit at 59 s, a miss at 60 s."""
    route = router.get(URL).respond(200, json={"v": 1})
    client = stack()

    first = client.get(URL)
    traveller.shift(59)
    at_59 = client.get(URL)
    traveller.shift(1)
    at_60 = client.get(URL)

    assert route.call_count == 2
    assert [info(r).cache for r in (first, at_59, at_60)] == ["miss", "hit", "miss"]
    assert info(first).ttl == 60
    assert info(at_59).ttl == 60
    assert first.headers["cache-control"] == "max-age=60"


def test_rule_overrides_api_headers(stack, router: respx.Router) -> None:
    """The rule's seconds replace what the API said (here: no-store)."""
    route = router.get(URL).respond(200, json={}, headers={"cache-control": "no-store"})
    client = stack()

    client.get(URL)
    second = client.get(URL)

    assert route.call_count == 1
    assert info(second).cache == "hit"


def test_rule_returning_none_defers_to_http(stack, router: respx.Router) -> None:
    """None from the rule: the API's own max-age decides."""
    route = router.get(URL).respond(200, json={}, headers={"cache-control": "max-age=5"})
    client = stack(profiles=[api_profile(freshness=lambda request, response, now: None)])

    first = client.get(URL)
    client.get(URL)

    assert route.call_count == 1
    assert info(first).ttl == 5


def test_rule_reads_the_body_and_the_clock(stack, router: respx.Router, traveller) -> None:
    """The rule gets the response body and the current time."""
    seen: list[tuple[bytes, float]] = []

    def rule(request: httpx.Request, response: httpx.Response, now: float) -> float:
        seen.append((response.content, now))
        return 30

    router.get(URL).respond(200, content=b"[1,2]")
    client = stack(profiles=[api_profile(freshness=rule)])

    assert info(client.get(URL)).ttl == 30
    assert seen == [(b"[1,2]", START.timestamp())]


@pytest.mark.parametrize("bad", [float("nan"), -5, float("inf"), "60", True])
def test_unusable_rule_answers_defer_to_http(stack, router: respx.Router, bad) -> None:
    """A NaN, negative, infinite or non-number TTL is never used."""
    router.get(URL).respond(200, json={})
    client = stack(profiles=[api_profile(freshness=lambda request, response, now: bad)])

    response = client.get(URL)

    assert info(response).ttl is None
    assert "cache-control" not in response.headers


def test_failing_rule_uses_default_ttl(stack, router: respx.Router, caplog) -> None:
    """A rule that raises on a body it cannot parse falls back to default_ttl."""

    def rule(request: httpx.Request, response: httpx.Response, now: float) -> float:
        raise ValueError("not JSON")

    route = router.get(URL).respond(200, text="<html>")
    client = stack(profiles=[api_profile(freshness=rule, default_ttl=15)])

    first = client.get(URL)
    client.get(URL)

    assert info(first).ttl == 15
    assert route.call_count == 1
    assert "freshness rule failed" in caplog.text


def test_errors_are_not_stored(stack, router: respx.Router) -> None:
    """4xx answers get no freshness from the rule and are asked again."""
    route = router.get(URL).respond(404, json={"message": "UNKNOWN_SPORT"})
    client = stack()

    client.get(URL)
    client.get(URL)

    assert route.call_count == 2


def test_new_answer_replaces_the_stored_one(stack, router, traveller, tmp_path) -> None:
    """After a refresh only one entry is kept under the key."""
    route = router.get(URL).respond(200, json={"v": 1})
    client = stack()
    client.get(URL)
    traveller.shift(61)
    route.respond(200, json={"v": 2})
    client.get(URL)
    third = client.get(URL)

    with sqlite3.connect(tmp_path / "state" / "cache.db") as db:
        # Entries hishel still serves expire later (their retention); removed ones are hidden.
        now = START.timestamp() + 61
        (count,) = db.execute(
            "SELECT COUNT(*) FROM entries WHERE expires_at > ?", (now,)
        ).fetchone()
    assert count == 1
    assert third.json() == {"v": 2}
    assert info(third).cache == "hit"


def test_query_order_does_not_split_the_cache(stack, router: respx.Router) -> None:
    """?a=1&b=2 and ?b=2&a=1 are one resource."""
    route = router.get(url__startswith=URL).respond(200, json={})
    client = stack()

    client.get(URL, params=[("a", "1"), ("b", "2")])
    second = client.get(URL, params=[("b", "2"), ("a", "1")])

    assert route.call_count == 1
    assert info(second).cache == "hit"
    assert str(route.calls.last.request.url).endswith("?a=1&b=2")


def test_upstream_date_is_kept_and_missing_date_added(stack, router: respx.Router) -> None:
    """hishel ages answers by Date, so one is written when the API sends none."""
    router.get(URL).respond(200, json={})
    client = stack()

    response = client.get(URL)

    assert response.headers["date"] == "Sun, 29 Nov 2026 12:00:00 GMT"


def test_scheme_and_port_make_different_resources(stack, router) -> None:
    """https://h/p?a=1, http://h/p?a=1 and https://h:8443/p?a=1 are three resources."""
    urls = ["https://api.test/p?a=1", "http://api.test/p?a=1", "https://api.test:8443/p?a=1"]
    route = router.get(host="api.test").mock(
        side_effect=lambda request: httpx.Response(200, json={"url": str(request.url)})
    )
    client = stack()

    answers = [client.get(url).json()["url"] for url in urls for _ in range(2)]

    assert answers == [url for url in urls for _ in range(2)]
    assert route.call_count == 3
