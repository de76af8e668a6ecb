"""RFC 9211 ``Cache-Status`` on every answer: quotaflow's member, last in the list."""

from __future__ import annotations

import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import respx

import quotaflow
from quotaflow import _cache_status

from .conftest import BASE, info
from .test_single_flight import held_upstream, joined, settings, wait_for

__all__ = ["joined"]  # a fixture, used by the single-flight test

URL = f"{BASE}/odds"
OTHER = "https://other.test/page"


# RFC 8941 §3.1 (lists), §3.1.2 (parameters), §3.3 (bare items) for what these tests see:
# tokens, strings, integers and booleans.
_ITEM = r'(?:-?\d{1,15}|\?[01]|"(?:[^"\\]|\\.)*"|[A-Za-z*][!#$%&\'*+\-.^_`|~:/\w]*)'
_KEY = r"[a-z*][a-z0-9_\-.*]*"
_PARAM = re.compile(rf";[ ]*({_KEY})(?:=({_ITEM}))?")
_MEMBER = re.compile(rf"({_ITEM})((?:;[ ]*{_KEY}(?:={_ITEM})?)*)")


def _bare(text: str | None) -> object:
    if not text or text == "?1":  # findall gives "" for a missing group
        return True
    if text == "?0":
        return False
    if text[0] in "-0123456789":
        return int(text)
    return text


def parse_list(value: str) -> list[tuple[str, dict[str, object]]]:
    """An sf-list of items with parameters; fails on anything RFC 8941 does not allow."""
    members, at = [], 0
    while True:
        found = _MEMBER.match(value, at)
        assert found, f"not an sf-list member at {value[at:]!r}"
        params = {key: _bare(item) for key, item in _PARAM.findall(found.group(2))}
        members.append((found.group(1), params))
        at = found.end()
        if at == len(value):
            return members
        separator = re.compile(r"[ \t]*,[ \t]*").match(value, at)
        assert separator, f"no separator in {value!r}"
        assert separator.end() < len(value), f"a trailing comma in {value!r}"
        at = separator.end()


def ours(response: httpx.Response) -> tuple[str, dict[str, object]]:
    """quotaflow's member, parsed as RFC 8941 says: it must be the last member, and
    the cache's name is a token."""
    name, params = parse_list(response.headers["cache-status"])[-1]
    assert name == "quotaflow"
    return name, params


def test_miss_then_hit(stack, router: respx.Router, traveller) -> None:
    """A first answer: fwd=uri-miss, the origin's status, stored, 60 s left; then a hit
    with what is left of its freshness, no upstream call."""
    route = router.get(URL).respond(200, json={"p": 1}, headers={"x-cost": "1"})
    client = stack()

    first = client.get(URL)
    traveller.shift(25)
    second = client.get(URL)

    assert route.call_count == 1
    assert ours(first)[1] == {"fwd": "uri-miss", "fwd-status": 200, "ttl": 60, "stored": True}
    assert ours(second)[1] == {"hit": True, "ttl": 35}
    assert second.headers["cache-status"] == "quotaflow; hit; ttl=35"


def test_hit_across_clients_from_storage(stack, router: respx.Router, traveller) -> None:
    """A hit read from storage (a new client, empty memory) says the same."""
    route = router.get(URL).respond(200, json={"p": 1})
    stack().get(URL)
    traveller.shift(10)

    again = stack().get(URL)

    assert route.call_count == 1
    assert info(again).tier == "storage"
    assert ours(again)[1] == {"hit": True, "ttl": 50}


def test_stored_but_unusable_is_a_miss(stack, router: respx.Router, traveller) -> None:
    """A stale stored answer without validators: fwd=miss (not uri-miss)."""
    route = router.get(URL).respond(200, json={"p": 1})
    client = stack()
    client.get(URL)
    traveller.shift(61)

    second = client.get(URL)

    assert route.call_count == 2
    assert info(second).cache == "miss"
    assert ours(second)[1] == {"fwd": "miss", "fwd-status": 200, "ttl": 60, "stored": True}


def test_revalidated(stack, router: respx.Router) -> None:
    """A stale entry revalidated by a 304: fwd=stale, fwd-status=304."""

    def answer(request: httpx.Request) -> httpx.Response:
        headers = {"etag": '"v1"', "cache-control": "max-age=0"}
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304, headers=headers)
        return httpx.Response(200, text="v1", headers=headers)

    route = router.get(OTHER).mock(side_effect=answer)
    client = stack()

    first = client.get(OTHER)
    second = client.get(OTHER)

    assert route.call_count == 2
    assert info(second).cache == "revalidated"
    assert ours(first)[1]["fwd"] == "uri-miss"
    params = ours(second)[1]
    assert params["fwd"] == "stale"
    assert params["fwd-status"] == 304
    assert "hit" not in params


def test_stale_on_503_went_forward(stack, router: respx.Router, traveller) -> None:
    """Upstream answered 503 and the stored answer stood in: fwd=stale, the 503, a
    negative ttl (61 s old, fresh for 60), the reason as detail."""
    route = router.get(URL).respond(200, json={"p": 1})
    client = stack()
    client.get(URL)
    traveller.shift(61)
    route.mock(return_value=httpx.Response(503, text="busy"))

    stale = client.get(URL)

    assert route.call_count == 2
    assert info(stale).cache == "stale"
    assert ours(stale)[1] == {"fwd": "stale", "fwd-status": 503, "ttl": -1, "detail": "status_503"}


def test_stale_on_network_error(stack, router: respx.Router, traveller) -> None:
    """No answer came (a connect error): fwd=stale without fwd-status."""
    route = router.get(URL).respond(200, json={"p": 1})
    client = stack()
    client.get(URL)
    traveller.shift(100)
    route.mock(side_effect=httpx.ConnectError("down"))

    stale = client.get(URL)

    assert route.call_count == 2
    assert ours(stale)[1] == {"fwd": "stale", "ttl": -40, "detail": "network"}


def test_stale_when_quota_is_used_up_is_a_hit(stack, router: respx.Router, traveller) -> None:
    """The ledger refused the request, which never left: the stored answer satisfied it,
    a hit (RFC 9211 §2.1) with a negative ttl."""
    route = router.get(URL).respond(200, json={"p": 1}, headers={"x-remaining": "0"})
    client = stack()
    client.get(URL)
    traveller.shift(90)

    stale = client.get(URL)

    assert route.call_count == 1
    assert info(stale).stale_reason == "quota"
    assert stale.headers["cache-status"] == "quotaflow; hit; ttl=-30; detail=quota"


def test_appended_after_upstream_members_and_never_stored(
    stack, router: respx.Router, traveller, tmp_path
) -> None:
    """The origin side's members come first (closest to the origin), ours last; the
    stored answer keeps only theirs, so a hit says hit once, not miss then hit."""
    route = router.get(URL).respond(
        200, json={"p": 1}, headers={"cache-status": 'OriginCDN; fwd=uri-miss, "edge"; hit'}
    )
    client = stack()

    first = client.get(URL)
    traveller.shift(1)
    from_memory = client.get(URL)
    from_storage = stack().get(URL)

    assert route.call_count == 1
    assert first.headers["cache-status"] == (
        'OriginCDN; fwd=uri-miss, "edge"; hit, '
        "quotaflow; fwd=uri-miss; fwd-status=200; ttl=60; stored"
    )
    for hit in (from_memory, from_storage):
        assert hit.headers["cache-status"] == (
            'OriginCDN; fwd=uri-miss, "edge"; hit, quotaflow; hit; ttl=59'
        )
    with sqlite3.connect(next((tmp_path / "state").glob("cache*.db"))) as db:
        stored = b"".join(bytes(row[0]) for row in db.execute("SELECT data FROM entries"))
    assert b"quotaflow" not in stored


def test_post_is_forwarded_for_its_method(stack, router: respx.Router) -> None:
    """An unsafe method goes forward whatever is stored: fwd=method."""
    route = router.post(f"{BASE}/things").respond(201, text="made")

    response = stack().request("POST", f"{BASE}/things")

    assert route.call_count == 1
    assert ours(response)[1] == {"fwd": "method", "fwd-status": 201}


def test_cache_off_is_a_bypass(stack, router: respx.Router) -> None:
    """``cache=False``: fwd=bypass, on every answer."""
    route = router.get(URL).respond(200, json={"p": 1})
    client = stack(cache=False)

    responses = [client.get(URL) for _ in range(2)]

    assert route.call_count == 2
    assert [ours(r)[1] for r in responses] == [{"fwd": "bypass", "fwd-status": 200}] * 2


def test_single_flight_followers_are_collapsed(tmp_path, router, clock, joined) -> None:
    """Followers of one upstream call: fwd=miss; collapsed; the leader's answer."""
    route, gate = held_upstream(router, lambda: httpx.Response(200, json={"v": 1}))
    with (
        quotaflow.make_client(**settings(tmp_path, router, clock)) as client,
        ThreadPoolExecutor(4) as pool,
    ):
        futures = [pool.submit(client.get, URL) for _ in range(4)]
        wait_for(joined, 4)
        gate.set()
        members = [ours(future.result())[1] for future in futures]

    assert route.call_count == 1
    leader = [m for m in members if "collapsed" not in m]
    followers = [m for m in members if "collapsed" in m]
    assert leader == [{"fwd": "uri-miss", "fwd-status": 200, "ttl": 60, "stored": True}]
    assert len(followers) == 3
    for member in followers:
        assert member["fwd"] == "miss"
        assert member["collapsed"] is True
        assert "fwd-status" not in member
        assert "hit" not in member


@pytest.mark.parametrize(
    ("value", "left"),
    [
        ("quotaflow; hit; ttl=3", None),
        ("CDN; hit, quotaflow; fwd=miss; stored", "CDN; hit"),
        ('CDN; detail="a, b"', 'CDN; detail="a, b"'),
        ("quotaflowish; hit", "quotaflowish; hit"),
    ],
)
def test_unstamped_drops_only_our_member(value: str, left: str | None) -> None:
    """What the hot tier and the cold store keep of the field."""
    assert _cache_status.unstamped(value) == left
