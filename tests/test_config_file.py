"""Configuration without code: quotaflow.toml, $QUOTAFLOW_CONFIG, [tool.quotaflow],
environment overrides and feature flags; bad files named with their line and field."""

from __future__ import annotations

import textwrap

import httpx
import pytest

import quotaflow
from quotaflow import ConfigError

from .conftest import BASE, api_profile, info

URL = f"{BASE}/odds"


def write(path, text: str):
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@pytest.fixture
def here(tmp_path, monkeypatch):
    """Run in an empty working directory, with no config in the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QUOTAFLOW_CONFIG", raising=False)
    return tmp_path


def open_client(here, router, clock, **kwargs):
    settings = {
        "profiles": [api_profile()],
        "plugins": False,
        "state_dir": here / "state",
        "transport": httpx.MockTransport(router.handler),
        "clock": clock,
        **kwargs,
    }
    return quotaflow.make_client(**settings)


def test_quotaflow_toml_turns_the_cache_off(here, router, clock) -> None:
    """cache = false in ./quotaflow.toml: every GET goes upstream."""
    write(here / "quotaflow.toml", "cache = false\n")
    route = router.get(URL).respond(200, json={})
    with open_client(here, router, clock) as client:
        client.get(URL)
        client.get(URL)

    assert route.call_count == 2


def test_explicit_arguments_win_over_the_file(here, router, clock) -> None:
    """make_client(cache=True) beats cache = false in the file."""
    write(here / "quotaflow.toml", "cache = false\n")
    route = router.get(URL).respond(200, json={})
    with open_client(here, router, clock, cache=True) as client:
        client.get(URL)
        client.get(URL)

    assert route.call_count == 1


def test_profile_settings_from_env_config_file(here, router, clock, traveller, monkeypatch) -> None:
    """$QUOTAFLOW_CONFIG names the file; it changes max_stale, quota and reserves."""
    config = write(
        here / "elsewhere.toml",
        """
        [profiles.api]
        max_stale = 10
        quota = { limit = 4, period = "day" }
        reserves = { normal = 0 }
        """,
    )
    monkeypatch.setenv("QUOTAFLOW_CONFIG", str(config))
    route = router.get(url__startswith=BASE).respond(200, json={})
    with open_client(here, router, clock) as client:
        for n in range(4):  # reserve 0: all four units may go
            client.get(f"{BASE}/{n}")
        with pytest.raises(quotaflow.QuotaExhausted):
            client.get(f"{BASE}/4")
        traveller.shift(71)  # 11 s stale: past max_stale 10
        route.mock(side_effect=httpx.ConnectError("down"))
        with pytest.raises(quotaflow.QuotaExhausted):
            client.get(f"{BASE}/0")


def test_pyproject_tool_table_and_environment_overrides(here, router, clock, monkeypatch) -> None:
    """[tool.quotaflow] in pyproject.toml; QUOTAFLOW_* variables override it."""
    write(
        here / "pyproject.toml",
        """
        [project]
        name = "picks"

        [tool.quotaflow]
        rate_limit = true

        [tool.quotaflow.profiles.api]
        quota = { limit = 1 }
        """,
    )
    monkeypatch.setenv("QUOTAFLOW_RATE_LIMIT", "false")
    monkeypatch.setenv("QUOTAFLOW__PROFILES__API__RETRIES", "0")
    route = router.get(url__startswith=BASE).respond(200, json={})
    with open_client(here, router, clock) as client:
        statuses = [client.get(f"{BASE}/{n}").status_code for n in range(3)]

    assert statuses == [200, 200, 200]  # the limiter is off: no refusal past the quota
    assert route.call_count == 3


def test_fallback_can_be_turned_off(here, router, clock, traveller) -> None:
    """fallback = false: an upstream failure is the caller's, even with an answer stored."""
    write(here / "quotaflow.toml", "fallback = false\n")
    route = router.get(URL).respond(200, json={})
    with open_client(here, router, clock) as client:
        client.get(URL)
        traveller.shift(61)
        route.mock(side_effect=httpx.ConnectError("down"))
        with pytest.raises(httpx.ConnectError):
            client.get(URL)


def test_freshness_thresholds_of_a_plugin_profile(here, router, clock) -> None:
    """The Odds API's TTL thresholds are settings: [profiles.theoddsapi.freshness]."""
    from quotaflow_theoddsapi import PROFILE, samples

    write(
        here / "quotaflow.toml",
        """
        [profiles.theoddsapi.freshness]
        no_events = 42
        """,
    )
    odds = "https://api.the-odds-api.com/v4/sports/baseball_mlb/odds"
    router.get(url__startswith=odds).mock(
        return_value=samples.response(samples.odds([]), used=1, remaining=499, last=0)
    )
    with open_client(here, router, clock, profiles=[PROFILE]) as client:
        response = client.get(odds, params={"regions": "us"})

    assert info(response).ttl == 42


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cache = flase\n", r"quotaflow\.toml.*line 1"),
        ("cache = 1\n", r"quotaflow\.toml, line 1: cache: expected true or false"),
        ("speed = 3\n", r"quotaflow\.toml, line 1: speed: unknown setting"),
        (
            "[profiles.api]\nmax_stale = 60\nreserves = { low = 2 }\n",
            r"quotaflow\.toml, line 3: profiles\.api: ApiProfile\.reserves",
        ),
        ("[profiles.api]\n\nspeed = 1\n", r"line 3: profiles\.api\.speed: unknown setting"),
        ("[profiles.nope]\nmax_stale = 1\n", r"profiles\.nope: no such profile \(installed: api\)"),
        (
            "[profiles.api]\nquota = { limit = 0 }\n",
            r"line 2: profiles\.api\.quota: Quota\.limit",
        ),
        (
            "[profiles.api.freshness]\nlive = 3\n",
            r"line 2: profiles\.api\.freshness: this profile's freshness rule has no settings",
        ),
    ],
)
def test_bad_files_name_file_line_and_field(here, router, clock, text, expected) -> None:
    """A bad file is refused when the client is built: file, line and field named."""
    write(here / "quotaflow.toml", text)

    with pytest.raises(ConfigError, match=expected):
        open_client(here, router, clock)


def test_config_false_reads_no_file(here, router, clock) -> None:
    """config=False ignores files (tests and libraries that want no surprises)."""
    write(here / "quotaflow.toml", "cache = false\n")
    route = router.get(URL).respond(200, json={})
    with open_client(here, router, clock, config=False) as client:
        client.get(URL)
        client.get(URL)

    assert route.call_count == 1
