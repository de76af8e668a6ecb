"""Bad configuration is refused when the client or profile is built, naming the field."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

import quotaflow
from quotaflow import ApiProfile, ConfigError, Quota, Rate

from .conftest import api_profile


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ""}, "ApiProfile.name"),
        ({"hosts": ()}, "ApiProfile.hosts"),
        ({"hosts": ("https://api.test/v1",)}, "ApiProfile.hosts"),
        ({"reserves": {"low": 1.5}}, "ApiProfile.reserves"),
        ({"reserves": {"urgent": 0.1}}, "ApiProfile.reserves"),
        ({"reserves": {"high": "a lot"}}, "ApiProfile.reserves"),
        ({"max_wait": {"normal": -1}}, "ApiProfile.max_wait"),
        ({"max_stale": -1}, "ApiProfile.max_stale"),
        ({"max_stale": float("nan")}, "ApiProfile.max_stale"),
        ({"default_ttl": -5}, "ApiProfile.default_ttl"),
        ({"cost": 3}, "ApiProfile.cost"),
        ({"freshness": "60"}, "ApiProfile.freshness"),
        ({"rates": [object()]}, "ApiProfile.rates"),
        ({"quota": 500}, "ApiProfile.quota"),
    ],
)
def test_bad_profile_fields_are_named(changes: dict[str, Any], field: str) -> None:
    """Each invalid ApiProfile field raises ConfigError naming it."""
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        api_profile(**changes)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Rate(0), "Rate.limit"),
        (lambda: Rate(5, per=-1), "Rate.per"),
        (lambda: Rate(5, burst=0), "Rate.burst"),
        (lambda: Rate(5, burst=6), "Rate.burst: must be at most the limit"),
        (lambda: Quota(0), "Quota.limit"),
        (lambda: Quota(500, period="week"), "Quota.period"),  # type: ignore[arg-type]
        (lambda: Quota(500, reset_day=32), "Quota.reset_day"),
    ],
)
def test_bad_limits_are_named(build, field: str) -> None:
    """Rate and Quota validate their fields too."""
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        build()


def test_config_error_is_a_value_error_not_an_httpx_error() -> None:
    """ConfigError fits `except ValueError`; it is no `httpx.HTTPError` (nothing was sent)."""
    with pytest.raises(ValueError, match="hosts"):
        ApiProfile(name="x", hosts=())
    assert not issubclass(ConfigError, httpx.HTTPError)


@pytest.mark.parametrize("factory", [quotaflow.make_client, quotaflow.make_async_client])
def test_bad_client_settings_are_named(factory, tmp_path) -> None:
    """make_client refuses a bad state_dir, profiles, transport or clock up front."""
    a_file = tmp_path / "file"
    a_file.write_text("")
    cases = [
        ({"state_dir": a_file / "sub"}, "state_dir"),
        ({"state_dir": 42}, "state_dir"),
        ({"profiles": "theoddsapi"}, "profiles"),
        ({"profiles": [object()]}, "profiles"),
        ({"transport": object()}, "transport"),
        ({"clock": object()}, "clock"),
        ({"mounts": {"https://x": "no transport"}}, "mounts"),
        ({"mounts": ["https://x"]}, "mounts"),
        ({"retries": "twice"}, "retries"),
        ({"state_dir": ""}, "state_dir: empty"),
        ({"state_dir": "~no-such-user-here/x"}, "state_dir"),
        ({"plugin": False}, "plugin: not an argument .* did you mean 'plugins'"),
        ({"timeuot": 3}, "did you mean 'timeout'"),
        ({"max_body": -1}, "max_body"),
    ]
    for kwargs, field in cases:
        settings = {"plugins": False, "state_dir": tmp_path / "ok", **kwargs}
        with pytest.raises(ConfigError, match=field):
            factory(**settings)


def test_bad_priority_on_a_request_is_refused(stack, router) -> None:
    """An unknown priority name is an error, not silently NORMAL."""
    client = stack()

    with pytest.raises(ConfigError, match="priority"):
        client.get("https://api.test/x", extensions={"priority": "urgent"})
    with pytest.raises(ConfigError, match="priority"), quotaflow.priority("asap"):
        pass


def test_explicit_profiles_replace_plugin_profiles_by_name(tmp_path) -> None:
    """A profile passed to make_client wins over a plugin's of the same name."""
    from quotaflow._plugins import resolve_plugins

    mine = ApiProfile(name="theoddsapi", hosts=("odds.internal",))

    registry, _ = resolve_plugins([mine], plugins=True)

    assert registry.match(httpx.URL("https://odds.internal/v4")).name == "theoddsapi"
    assert registry.match(httpx.URL("https://api.the-odds-api.com/v4")).name == "default"


def test_wildcard_hosts_and_path_prefix() -> None:
    """*.example.com matches subdomains; path_prefix narrows a profile."""
    from quotaflow._plugins import Registry

    registry = Registry(
        [
            ApiProfile(name="v2", hosts=("*.example.com",), path_prefix="/v2"),
            ApiProfile(name="api", hosts=("api.example.com",), path_prefix="/v1"),
        ]
    )

    assert registry.match(httpx.URL("https://api.example.com/v1/x")).name == "api"
    assert registry.match(httpx.URL("https://eu.example.com/v2/x")).name == "v2"
    assert registry.match(httpx.URL("https://example.com/v2/x")).name == "default"
    assert registry.match(httpx.URL("https://api.example.com/v3")).name == "default"
