"""Every answer says why: ResponseInfo's stored, tier and reason, and one DEBUG line."""

from __future__ import annotations

import logging

import httpx

import quotaflow

from .conftest import BASE, info

URL = "https://plain.example/doc"


def test_hits_say_which_tier(stack, router) -> None:
    router.get(URL).respond(200, json={}, headers={"cache-control": "max-age=60"})
    hot = stack()
    miss, memory = hot.get(URL), hot.get(URL)
    warm = stack(hot_entries=0)
    storage = warm.get(URL)

    assert (info(miss).stored, info(miss).tier) == (True, None)
    assert info(miss).reason == "fresh 60 s by the answer's Cache-Control"
    assert (info(memory).tier, info(memory).reason) == ("memory", "fresh in memory")
    assert (info(storage).tier, info(storage).stored) == ("storage", True)


def test_a_profile_rule_names_itself(stack, router) -> None:
    router.get(f"{BASE}/odds").respond(200, json={})
    client = stack()

    answer = client.get(f"{BASE}/odds")

    assert info(answer).stored
    assert info(answer).reason == "fresh 60 s by the freshness rule of profile api"


def test_why_an_answer_was_not_stored(stack, router) -> None:
    router.get("https://plain.example/private").respond(
        200, json={}, headers={"cache-control": "no-store"}
    )
    router.get("https://plain.example/bare").respond(200, json={})
    router.get("https://plain.example/big").respond(
        200, content=b"x" * 5000, headers={"cache-control": "max-age=60"}
    )
    client = stack(max_body=1000)

    private = client.get("https://plain.example/private")
    bare = client.get("https://plain.example/bare")
    big = client.get("https://plain.example/big")

    assert not info(private).stored
    assert info(private).reason == "no-store in the answer's Cache-Control"
    assert not info(bare).stored
    assert info(bare).reason == "no freshness in the answer's headers and no rule for it"
    assert not info(big).stored
    assert info(big).reason == "the body is over max_body (1000 bytes)"


def test_stale_answers_say_why(stack, router, traveller) -> None:
    route = router.get(f"{BASE}/odds").respond(200, json={})
    client = stack()
    client.get(f"{BASE}/odds")
    traveller.shift(100)
    route.mock(side_effect=httpx.ConnectError("down"))

    stale = client.get(f"{BASE}/odds")

    assert info(stale).reason == "stale (network): 100 s old, within max_stale"
    assert info(stale).tier == "storage"


def test_one_debug_line_per_request_without_secrets(stack, router, caplog) -> None:
    router.get(f"{BASE}/odds").respond(200, json={})
    client = stack()
    caplog.set_level(logging.DEBUG, logger="quotaflow")

    client.get(f"{BASE}/odds", params={"key": "SEKRIT"})
    client.get(f"{BASE}/odds", params={"key": "SEKRIT"})

    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("quotaflow: GET")]
    assert lines == [
        f"quotaflow: GET {BASE}/odds -> miss, cost 1 (api): "
        "fresh 60 s by the freshness rule of profile api",
        f"quotaflow: GET {BASE}/odds -> hit from memory, cost 0 (api): fresh in memory",
    ]
    assert "SEKRIT" not in caplog.text


def test_a_forced_refresh_is_what_later_requests_get(stack, router) -> None:
    """Request Cache-Control: no-cache fetches a new answer; later plain GETs get it, from
    memory and from storage, not the older one."""
    answers = iter([{"v": 1}, {"v": 2}, {"v": 3}])
    router.get(URL).mock(
        side_effect=lambda request: httpx.Response(
            200, json=next(answers), headers={"cache-control": "max-age=600"}
        )
    )
    client = stack()
    warm = stack(hot_entries=0)

    client.get(URL)
    refreshed = client.get(URL, headers={"cache-control": "no-cache"})
    later = client.get(URL)
    from_storage = warm.get(URL)

    assert refreshed.json() == later.json() == from_storage.json() == {"v": 2}


def test_reasons_of_answers_that_say_something_else(stack, router) -> None:
    router.get("https://plain.example/nc").respond(
        200, json={}, headers={"cache-control": "no-cache"}
    )
    router.get("https://plain.example/s").respond(
        200, json={}, headers={"cache-control": "s-maxage=60"}
    )
    router.get("https://plain.example/v").respond(
        200, json={}, headers={"cache-control": "max-age=60", "vary": "*"}
    )
    client = stack()

    reasons = [info(client.get(f"https://plain.example/{p}")).reason for p in ("nc", "s", "v")]

    assert reasons == [
        "no-cache in the answer's Cache-Control: stored, revalidated before every use",
        "only s-maxage in the answer's Cache-Control: for shared caches, not this one",
        "Vary: * in the answer: never reused",
    ]


def test_explain_sees_the_credentials_httpx_derives_from_userinfo(tmp_path, router) -> None:
    """httpx sends URL userinfo as Basic credentials: explain looks the same way."""
    from quotaflow._explain import explain

    router.get("https://plain.example/private").respond(
        200, json={}, headers={"cache-control": "max-age=60"}
    )
    with quotaflow.make_client(
        plugins=False,
        config=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
    ) as client:
        client.get("https://user:pw@plain.example/private")

        found = explain(client, "https://user:pw@plain.example/private")

    assert found.would == "be answered from the cache, fresh: nothing sent, cost 0"
    assert "pw" not in repr(found)
