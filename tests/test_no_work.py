"""Requests that need no work skip it (issue 16): an unsafe request to a URL no profile
matches goes straight to the network once nothing is stored under it, and an answer
that will never be reused neither is stored nor makes its URL's next request read the
storage. Drop-in behaviour stays: a POST still invalidates what is stored."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import respx

from quotaflow import events
from quotaflow._transports._bare import BARE

from .conftest import BASE, Harness, api_profile, info

OTHER = "https://example.org/things"


def test_unprofiled_post_goes_straight_once_nothing_is_stored(
    stack: Callable[..., Harness], router: respx.Router, statements: Counter[str]
) -> None:
    """The first POST invalidates through the stack; the next ones read no storage."""
    route = router.post(OTHER).respond(201, text="made")
    client = stack()

    first = client.request("POST", OTHER, content=b"{}")
    statements.clear()
    rest = [client.request("POST", OTHER, content=b"{}") for _ in range(5)]

    assert route.call_count == 6
    assert [r.text for r in rest] == ["made"] * 5
    assert info(first).reason != BARE
    assert {info(r).reason for r in rest} == {BARE}
    assert {(info(r).profile, info(r).cache, info(r).cost) for r in rest} == {
        ("default", "miss", 0)
    }
    assert statements["cache.db"] == 0
    # RFC 9211: the same Cache-Status member as the whole stack gives.
    assert {r.headers["cache-status"] for r in [first, *rest]} == {
        "quotaflow; fwd=method; fwd-status=201"
    }


def test_post_still_invalidates_a_get_stored_after_it(
    stack: Callable[..., Harness], router: respx.Router
) -> None:
    """Known empty until something is stored: a GET stored after a POST is invalidated
    by the next POST (RFC 9111 §4.4), in memory and in storage."""
    get = router.get(OTHER).respond(200, text="v", headers={"cache-control": "max-age=600"})
    router.post(OTHER).respond(204)
    client = stack()

    client.request("POST", OTHER)
    client.request("POST", OTHER)
    client.get(OTHER)
    assert info(client.get(OTHER)).cache == "hit"
    client.request("POST", OTHER)
    after = client.get(OTHER)

    assert info(after).cache == "miss"
    assert get.call_count == 2


def test_failed_post_keeps_the_stored_get(
    stack: Callable[..., Harness], router: respx.Router
) -> None:
    """A POST that fails invalidates nothing, so nothing is known empty after it."""
    get = router.get(OTHER).respond(200, text="v", headers={"cache-control": "max-age=600"})
    router.post(OTHER).respond(400)
    client = stack()

    client.get(OTHER)
    client.request("POST", OTHER)
    client.request("POST", OTHER)

    assert info(client.get(OTHER)).cache == "hit"
    assert get.call_count == 1


def test_a_credential_header_takes_the_whole_stack(
    stack: Callable[..., Harness], router: respx.Router
) -> None:
    """A POST carrying a credential partitions like any other request: it invalidates
    that credential's stored GET, even after plain POSTs to the URL went straight."""
    get = router.get(OTHER).respond(200, text="v", headers={"cache-control": "max-age=600"})
    router.post(OTHER).respond(204)
    client = stack()
    auth = {"authorization": "Bearer one"}

    client.request("POST", OTHER)
    client.request("POST", OTHER)
    client.get(OTHER, headers=auth)
    posted = client.request("POST", OTHER, headers=auth)
    after = client.get(OTHER, headers=auth)

    assert info(posted).reason != BARE
    assert info(after).cache == "miss"
    assert get.call_count == 2


def test_subscribers_still_see_every_post(
    stack: Callable[..., Harness], router: respx.Router
) -> None:
    """With a subscriber of the client's own, every request reports its event."""
    router.post(OTHER).respond(201)
    seen: list[events.Event] = []
    client = stack(subscribers=[seen.append])

    responses = [client.request("POST", OTHER) for _ in range(3)]

    assert [type(e) for e in seen] == [events.Fetched] * 3
    assert BARE not in {info(r).reason for r in responses}


def test_unreusable_answers_are_not_stored_nor_looked_for(
    stack: Callable[..., Harness], router: respx.Router, statements: Counter[str]
) -> None:
    """GETs whose answers say nothing of freshness: each goes upstream, none is stored,
    and once the first has emptied the key, the storage is not read for it."""
    route = router.get(OTHER).respond(200, json={"n": 1})
    client = stack()

    client.get(OTHER)
    statements.clear()
    rest = [client.get(OTHER) for _ in range(5)]

    assert route.call_count == 6
    assert {(info(r).cache, info(r).stored) for r in rest} == {("miss", False)}
    assert [r.json() for r in rest] == [{"n": 1}] * 5
    assert statements["cache.db"] == 0


def test_a_reusable_answer_after_unreusable_ones_is_stored(
    stack: Callable[..., Harness], router: respx.Router
) -> None:
    """Once the origin gives freshness, the next answer is stored and served again (the
    first fresh one went around the cache, as bare httpx would: unprofiled, no quota)."""
    fresh = {"cache-control": "max-age=600"}
    answers = iter(
        [
            httpx.Response(200, text="a"),
            httpx.Response(200, text="a"),
            httpx.Response(200, text="b", headers=fresh),
            httpx.Response(200, text="c", headers=fresh),
        ]
    )
    route = router.get(OTHER).mock(side_effect=lambda request: next(answers))
    client = stack(hot_entries=0)  # the storage itself must answer

    _, second, third, fourth = (client.get(OTHER) for _ in range(4))
    fifth = client.get(OTHER)

    assert route.call_count == 4
    assert [info(r).stored for r in (second, third, fourth)] == [False, False, True]
    assert "the next is" in info(third).reason
    assert (info(fifth).cache, info(fifth).tier, fifth.text) == ("hit", "storage", "c")


def test_a_profiled_url_never_goes_around_the_cache(
    stack: Callable[..., Harness], router: respx.Router
) -> None:
    """A profiled URL's answers are counted: the first fresh one is stored at once."""
    answers = iter(
        [
            httpx.Response(200, json={}),
            httpx.Response(200, json={}),
            httpx.Response(200, json={}, headers={"cache-control": "max-age=600"}),
        ]
    )
    route = router.get(f"{BASE}/odds").mock(side_effect=lambda request: next(answers))
    # The headers decide, and nothing is kept for the fallback: never reused.
    client = stack(profiles=[api_profile(freshness=None, max_stale=0)])

    responses = [client.get(f"{BASE}/odds") for _ in range(4)]

    assert route.call_count == 3
    assert [info(r).cache for r in responses] == ["miss", "miss", "miss", "hit"]


def test_clients_on_one_state_share_what_is_known_empty(
    tmp_path: Path, router: respx.Router
) -> None:
    """A GET stored by one client on the state directory is invalidated by another
    client's POST, however many POSTs that one sent straight before."""
    import quotaflow

    get = router.get(OTHER).respond(200, text="v", headers={"cache-control": "max-age=600"})
    router.post(OTHER).respond(204)
    settings: dict[str, Any] = {
        "plugins": False,
        "state_dir": tmp_path / "s",
        "transport": httpx.MockTransport(router.handler),
        "hot_entries": 0,  # the storage answers: no copy in the reader's memory
    }
    with quotaflow.make_client(**settings) as poster, quotaflow.make_client(**settings) as reader:
        poster.post(OTHER)
        poster.post(OTHER)
        reader.get(OTHER)
        posted = poster.post(OTHER)
        after = reader.get(OTHER)

    assert info(posted).reason != BARE
    assert info(after).cache == "miss"
    assert get.call_count == 2
