"""Freshness for APIs that say nothing: default_ttl and URL rules (client, profile, TOML)."""

from __future__ import annotations

import pytest

import quotaflow

from .conftest import api_profile, info

URL = "https://plain.example/items"


def test_an_api_with_no_cache_headers_is_cached_with_default_ttl(stack, router, traveller) -> None:
    route = router.get(URL).respond(200, json={"v": 1})
    client = stack(default_ttl="1m")

    first, second = client.get(URL), client.get(URL)
    traveller.shift(61)
    third = client.get(URL)

    assert [info(r).cache for r in (first, second, third)] == ["miss", "hit", "miss"]
    assert info(first).reason == "fresh 60 s by default_ttl: the answer says nothing"
    assert route.call_count == 2


def test_without_default_ttl_nothing_is_cached(stack, router) -> None:
    route = router.get(URL).respond(200, json={"v": 1})
    client = stack()

    client.get(URL)
    client.get(URL)

    assert route.call_count == 2


def test_the_origins_own_freshness_wins_over_default_ttl(stack, router, traveller) -> None:
    route = router.get(URL).respond(200, json={}, headers={"cache-control": "max-age=5"})
    no_store = router.get(f"{URL}/private").respond(
        200, json={}, headers={"cache-control": "no-store"}
    )
    client = stack(default_ttl=60)

    client.get(URL)
    traveller.shift(6)
    client.get(URL)
    client.get(f"{URL}/private")
    client.get(f"{URL}/private")

    assert (route.call_count, no_store.call_count) == (2, 2)


def test_url_rules_override_the_origin_or_never_store(stack, router, traveller) -> None:
    static = router.get("https://plain.example/static/app.js").respond(
        200, text="js", headers={"cache-control": "max-age=5"}
    )
    live = router.get("https://plain.example/live/score").respond(
        200, json={}, headers={"cache-control": "max-age=60"}
    )
    client = stack(url_rules={"plain.example/static/*": "1h", "plain.example/live/*": "no-store"})

    client.get("https://plain.example/static/app.js")
    traveller.shift(600)
    cached = client.get("https://plain.example/static/app.js")
    first = client.get("https://plain.example/live/score")
    client.get("https://plain.example/live/score")

    assert (static.call_count, live.call_count) == (1, 2)
    assert info(cached).cache == "hit"
    assert info(first).reason == "never stored: the URL rule 'plain.example/live/*' says no-store"


def test_a_profiles_default_ttl_covers_its_silent_answers(stack, router) -> None:
    route = router.get("https://api.test/silent").respond(200, json={})
    client = stack(profiles=[api_profile(freshness=None, default_ttl="2m")])

    client.get("https://api.test/silent")
    second = client.get("https://api.test/silent")

    assert route.call_count == 1
    assert info(second).ttl == 120


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"default_ttl": "30x"}, "default_ttl"),
        ({"default_ttl": -5}, "default_ttl"),
        ({"url_rules": ["x"]}, "url_rules"),
        ({"url_rules": {"https://x/*": 5}}, "url_rules"),
        ({"url_rules": {"x/*": "forever"}}, "url_rules"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(stack, settings, field) -> None:
    with pytest.raises(quotaflow.ConfigError, match=field):
        stack(**settings)


def test_rules_from_quotaflow_toml(stack, router, tmp_path, traveller) -> None:
    config = tmp_path / "quotaflow.toml"
    config.write_text('default_ttl = "30s"\n\n[url_rules]\n"plain.example/live/*" = "no-store"\n')
    route = router.get(URL).respond(200, json={})
    live = router.get("https://plain.example/live/x").respond(
        200, json={}, headers={"cache-control": "max-age=60"}
    )
    client = stack(config=config)

    client.get(URL)
    client.get(URL)
    client.get("https://plain.example/live/x")
    client.get("https://plain.example/live/x")

    assert (route.call_count, live.call_count) == (1, 2)


def test_a_bad_rule_in_quotaflow_toml_names_file_and_line(stack, tmp_path) -> None:
    config = tmp_path / "quotaflow.toml"
    config.write_text('cache = true\ndefault_ttl = "soon"\n')

    with pytest.raises(quotaflow.ConfigError, match=r"quotaflow\.toml, line 2: default_ttl"):
        stack(config=config)
