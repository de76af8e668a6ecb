"""The ledger believes only answers that come from the API now (issue 14): quota and
window fields on answers served from the cache are not a new reading."""

from __future__ import annotations

import httpx
import respx

from quotaflow import WindowHeaders

from .conftest import BASE, api_profile, info

URL = f"{BASE}/odds"
OTHER = f"{BASE}/scores"


def test_a_cached_answers_quota_fields_never_update_the_ledger(
    stack, router: respx.Router, traveller
) -> None:
    """IETF RateLimit draft: fields on a stored answer describe the moment it was
    received. A hit, then a stale answer, both carrying 'x-remaining: 90', report the
    ledger's 50 learned since, and leave it there."""
    odds = router.get(URL).respond(
        200, json={"p": 1}, headers={"x-remaining": "90", "x-used": "10", "x-cost": "1"}
    )
    scores = router.get(OTHER).respond(
        200, json={"s": 1}, headers={"x-remaining": "50", "x-used": "50", "x-cost": "1"}
    )
    client = stack()

    assert info(client.get(URL)).remaining == 90
    assert info(client.get(OTHER)).remaining == 50
    hit = client.get(URL)
    traveller.shift(61)
    odds.mock(side_effect=httpx.ConnectError("down"))
    stale = client.get(URL)
    scores.respond(200, json={"s": 2}, headers={"x-cost": "1"})
    after = client.get(f"{OTHER}?fresh=1")

    assert (odds.call_count, scores.call_count) == (2, 2)
    assert hit.headers["x-remaining"] == "90"
    assert info(hit).cache == "hit"
    assert info(hit).remaining == 50
    assert stale.headers["x-remaining"] == "90"
    assert info(stale).cache == "stale"
    assert info(stale).remaining == 50
    # The ledger went on from 50, not from 90: the cached fields were never read.
    assert info(after).remaining == 49


def test_a_cached_answers_window_fields_never_hold_the_profile(
    stack, router: respx.Router, traveller, sleeps
) -> None:
    """A stored answer saying the short window is spent (left 0, reset in 5 s) held
    the profile once, when it came; served again from the cache it holds nothing."""
    reader = WindowHeaders(remaining="x-window-left", reset="x-window-reset")
    router.get(URL).respond(
        200, json={"p": 1}, headers={"x-window-left": "0", "x-window-reset": "5"}
    )
    scores = router.get(OTHER).respond(200, json={"s": 1})
    client = stack(profiles=[api_profile(read_window=reader)])
    client.get(URL)
    traveller.shift(10)
    sleeps.clear()

    hits = [client.get(URL) for _ in range(3)]
    client.get(OTHER)

    assert {info(h).cache for h in hits} == {"hit"}
    assert scores.call_count == 1
    assert sleeps == []
