"""Behaviour 1: hosts no profile matches get plain httpx plus RFC 9111 caching."""

from __future__ import annotations

import httpx
import respx

from .conftest import BASE, info

OTHER = "https://example.org/page"


def test_max_age_is_served_from_cache(stack, router: respx.Router) -> None:
    """A max-age=60 response is a hit on the second GET, a miss again after 60 s."""
    route = router.get(OTHER).respond(200, text="hello", headers={"cache-control": "max-age=60"})
    client = stack()

    first = client.get(OTHER)
    second = client.get(OTHER)

    assert route.call_count == 1
    assert (info(first).cache, info(second).cache) == ("miss", "hit")
    assert second.text == "hello"
    assert info(second).profile == "default"
    assert info(first).ttl == 60


def test_expired_entry_goes_upstream(stack, router: respx.Router, traveller) -> None:
    """Once max-age has passed, the next GET is a miss."""
    route = router.get(OTHER).respond(200, text="v", headers={"cache-control": "max-age=60"})
    client = stack()
    client.get(OTHER)

    traveller.shift(61)
    again = client.get(OTHER)

    assert route.call_count == 2
    assert info(again).cache == "miss"


def test_no_store_is_never_stored(stack, router: respx.Router) -> None:
    """no-store responses always go upstream."""
    route = router.get(OTHER).respond(200, text="x", headers={"cache-control": "no-store"})
    client = stack()

    responses = [client.get(OTHER) for _ in range(3)]

    assert route.call_count == 3
    assert {info(r).cache for r in responses} == {"miss"}


def test_etag_revalidation(stack, router: respx.Router) -> None:
    """A stale entry with an ETag is revalidated; a 304 serves the stored body."""
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("if-none-match"))
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304, headers={"etag": '"v1"', "cache-control": "max-age=0"})
        return httpx.Response(
            200, text="body-v1", headers={"etag": '"v1"', "cache-control": "max-age=0"}
        )

    router.get(OTHER).mock(side_effect=answer)
    client = stack()

    first = client.get(OTHER)
    second = client.get(OTHER)

    assert seen == [None, '"v1"']
    assert info(first).cache == "miss"
    assert info(second).cache == "revalidated"
    assert second.text == "body-v1"


def test_post_always_goes_upstream_and_spends_nothing(stack, router: respx.Router) -> None:
    """POST to a profiled API is neither cached nor rate limited nor charged."""
    route = router.post(f"{BASE}/things").respond(201, text="made")
    client = stack()

    responses = [client.request("POST", f"{BASE}/things", content=b"{}") for _ in range(12)]

    assert route.call_count == 12  # 12 > the 5/s burst: no waiting either
    assert all(r.status_code == 201 for r in responses)
    assert {info(r).cost for r in responses} == {0}
    assert {info(r).waited for r in responses} == {0.0}


def test_unsafe_request_invalidates_stored_get(stack, router: respx.Router) -> None:
    """RFC 9111 §4.4: a successful POST to the URL invalidates the stored GET."""
    get = router.get(OTHER).respond(200, text="v", headers={"cache-control": "max-age=600"})
    router.post(OTHER).respond(204)
    client = stack()

    client.get(OTHER)
    client.request("POST", OTHER)
    after = client.get(OTHER)

    assert get.call_count == 2
    assert info(after).cache == "miss"


def test_default_state_dir_comes_from_environment(tmp_path, monkeypatch, router) -> None:
    """Without state_dir, $QUOTAFLOW_HOME holds the state files."""
    import quotaflow

    monkeypatch.setenv("QUOTAFLOW_HOME", str(tmp_path / "home"))
    router.get(OTHER).respond(200, text="v", headers={"cache-control": "max-age=60"})
    with quotaflow.make_client(plugins=False, transport=httpx.MockTransport(router.handler)) as c:
        c.get(OTHER)

    assert sorted(p.name for p in (tmp_path / "home").glob("*.db")) == ["cache.db", "state.db"]
