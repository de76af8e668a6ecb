"""An unsafe request's answer to a profiled API (issue 16): counted and limited like any
upstream call, never stored, so no lifetime is worked out for it nor written into it;
once nothing is stored under its URL, hishel (which would invalidate nothing) is not
asked, and the answer comes out as it would through hishel."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hishel.httpx
import httpx
import pytest
import respx

from .conftest import BASE, Harness, api_profile, info

URL = f"{BASE}/bets"


def test_a_post_answer_keeps_its_headers_and_says_it_is_never_stored(
    stack: Callable[..., Harness], router: respx.Router
) -> None:
    """The profile's freshness rule (60 s here) is for GETs: a POST's answer keeps the
    Cache-Control it came with, and its ResponseInfo has no lifetime."""
    seen: list[int] = []

    def freshness(request: httpx.Request, response: httpx.Response, now: float) -> float:
        seen.append(1)
        return 60

    route = router.post(URL).respond(201, json={"ok": 1}, headers={"cache-control": "no-cache"})
    client = stack(profiles=[api_profile(freshness=freshness)])

    answer = client.request("POST", URL, json={"bet": 1})

    assert route.call_count == 1
    assert answer.headers["cache-control"] == "no-cache"
    assert (info(answer).ttl, info(answer).stored) == (None, False)
    assert info(answer).reason == "an unsafe method's answer: never stored"
    assert answer.headers["cache-status"] == "quotaflow; fwd=method; fwd-status=201"
    assert seen == []


@pytest.fixture
def through_hishel(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The methods of the requests that went through hishel's transport, sync or async."""
    seen: list[str] = []
    sync, asynchronous = hishel.httpx.CacheTransport, hishel.httpx.AsyncCacheTransport
    handle, ahandle = sync.handle_request, asynchronous.handle_async_request

    def spy(self: Any, request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        return handle(self, request)

    async def aspy(self: Any, request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        return await ahandle(self, request)

    monkeypatch.setattr(sync, "handle_request", spy)
    monkeypatch.setattr(asynchronous, "handle_async_request", aspy)
    return seen


def test_posts_after_the_first_skip_hishel_and_answer_alike(
    stack: Callable[..., Harness],
    router: respx.Router,
    statements: Counter[str],
    through_hishel: list[str],
) -> None:
    """The first POST goes through hishel (something may be stored under the URL);
    it leaves nothing, so the next ones read no cache storage, and their answers carry
    the same ResponseInfo and Cache-Status as the first's."""
    router.post(URL).respond(200, json={"ok": 1}, headers={"x-remaining": "50"})
    client = stack()

    first = client.request("POST", URL, json={})
    statements.clear()
    rest = [client.request("POST", URL, json={}) for _ in range(3)]

    assert statements["cache.db"] == 0
    assert through_hishel == ["POST"]  # the first one only
    assert {r.headers["cache-status"] for r in [first, *rest]} == {
        "quotaflow; fwd=method; fwd-status=200"
    }
    assert {(info(r).cache, info(r).cost, info(r).ttl, info(r).reason) for r in rest} == {
        (info(first).cache, info(first).cost, info(first).ttl, info(first).reason)
    }


def test_a_post_still_invalidates_a_get_stored_after_it(
    stack: Callable[..., Harness], router: respx.Router, tmp_path: Path
) -> None:
    """What this process knows empty it may skip; a GET this process stores afterwards
    makes the URL's key known full again, and the next POST invalidates it."""
    get = router.get(URL).respond(200, json={"v": 1})
    router.post(URL).respond(204)
    poster = stack(hot_entries=0)

    poster.request("POST", URL)
    poster.request("POST", URL)
    assert info(poster.get(URL)).stored
    assert info(poster.get(URL)).cache == "hit"
    poster.request("POST", URL)
    after = poster.get(URL)

    assert info(after).cache == "miss"
    assert get.call_count == 2


def test_a_failed_post_leaves_the_stored_get(
    stack: Callable[..., Harness], router: respx.Router
) -> None:
    """RFC 9111 §4.4: only a non-error answer invalidates."""
    get = router.get(URL).respond(200, json={"v": 1})
    router.post(URL).respond(404, json={"error": "no"})
    client = stack(hot_entries=0)

    client.get(URL)
    client.request("POST", URL)
    again = client.get(URL)

    assert (info(again).cache, get.call_count) == ("hit", 1)
