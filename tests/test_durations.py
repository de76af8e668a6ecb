"""Durations everywhere (issue 11): seconds or "30s", "5m", "1h", "1d" in every
duration setting, in code, quotaflow.toml and the environment; anything else is a
ConfigError naming the field (a freshness of "30s" used to turn caching off)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import time_machine

import quotaflow
from quotaflow import ApiProfile, ConfigError, Rate, parse_duration
from quotaflow_ratelimit_headers import FixedTtl, profile_for
from quotaflow_theoddsapi import PROFILE, samples

from .conftest import BASE, Harness, api_profile, info

GOOD = [
    (30, 30.0),
    (0.5, 0.5),
    (0, 0.0),
    ("90", 90.0),
    ("30s", 30.0),
    ("5m", 300.0),
    ("1h", 3600.0),
    ("1d", 86400.0),
    ("1.5h", 5400.0),
    (" 2 M ", 120.0),
]
BAD = ["30x", -5, "thirty", "", "5 m s", "-1s", "1e3", float("inf"), float("nan"), True, None, [30]]
DURATIONS = (
    "default_ttl",
    "max_stale",
    "revalidation_window",
    "backoff",
    "backoff_max",
    "breaker_cooldown",
)


@pytest.mark.parametrize(("value", "seconds"), GOOD)
def test_parse_duration_reads_seconds_and_units(value: object, seconds: float) -> None:
    """Numbers are seconds; s, m, h and d are units (any case, spaces allowed)."""
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", BAD)
def test_parse_duration_refuses_the_rest(value: object) -> None:
    """Unknown units, negatives, words, infinities, booleans: ValueError."""
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(value)


@pytest.mark.parametrize("field", DURATIONS)
@pytest.mark.parametrize(("value", "seconds"), [("30s", 30.0), ("5m", 300.0), (2, 2.0)])
def test_every_profile_duration_takes_units(field: str, value: object, seconds: float) -> None:
    """Each ApiProfile duration field stores seconds."""
    assert getattr(api_profile(**{field: value}), field) == seconds


@pytest.mark.parametrize("field", DURATIONS)
@pytest.mark.parametrize("value", ["30x", -5, "thirty"])
def test_every_profile_duration_names_itself_when_malformed(field: str, value: object) -> None:
    """A malformed duration is a ConfigError naming ApiProfile.FIELD and the value."""
    with pytest.raises(ConfigError, match=rf"ApiProfile\.{field}: expected a duration.*{value!r}"):
        api_profile(**{field: value})


def test_rate_per_and_max_wait_take_units() -> None:
    """Rate.per and every max_wait value are durations too."""
    assert Rate(60, per="1m") == Rate(60, per=60.0)
    profile = api_profile(max_wait={"normal": "2m", "low": "500"})
    assert (profile.max_wait["normal"], profile.max_wait["low"]) == (120.0, 500.0)
    with pytest.raises(ConfigError, match=r"Rate\.per: expected a duration"):
        Rate(60, per="1 minute")
    with pytest.raises(ConfigError, match=r"ApiProfile\.max_wait: normal: expected a duration"):
        api_profile(max_wait={"normal": "30x"})


def test_plugin_settings_take_units() -> None:
    """FixedTtl and profile_for read durations with the same parser."""
    assert FixedTtl("30s") == FixedTtl(30)
    profile = profile_for("x", "x.test", rate=10, per="1m", ttl="5m", max_stale="1d")
    assert (profile.rates[0].per, profile.default_ttl, profile.max_stale) == (60, 300, 86400)
    with pytest.raises(ConfigError, match=r"FixedTtl\.ttl: expected a duration"):
        FixedTtl("30x")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="ttl: expected a duration"):
        profile_for("x", "x.test", ttl="thirty")


def _write(here: Path, text: str) -> Path:
    path = here / "quotaflow.toml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, with no config in the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QUOTAFLOW_CONFIG", raising=False)
    return tmp_path


def test_a_freshness_of_30s_in_toml_caches_for_30_seconds(
    here: Path,
    stack: Callable[..., Harness],
    router: respx.Router,
    traveller: time_machine.Traveller,
) -> None:
    """[profiles.api.freshness] ttl = "30s": fresh for 30 s, then fetched again
    (it used to reach the rule as text and turn caching off)."""
    _write(here, '[profiles.api]\nmax_stale = "1h"\n\n[profiles.api.freshness]\nttl = "30s"\n')
    route = router.get(f"{BASE}/x").respond(200, json={})
    client = stack(profiles=[api_profile(freshness=FixedTtl(60))], config=None)

    first = client.get(f"{BASE}/x")
    traveller.shift(29)
    client.get(f"{BASE}/x")
    assert (info(first).ttl, route.call_count) == (30, 1)
    traveller.shift(2)
    client.get(f"{BASE}/x")
    assert route.call_count == 2


def test_odds_freshness_thresholds_take_units(
    here: Path, stack: Callable[..., Harness], router: respx.Router
) -> None:
    """A plugin rule's thresholds ([profiles.theoddsapi.freshness]) are durations."""
    _write(here, '[profiles.theoddsapi.freshness]\nno_events = "2m"\n')
    odds = "https://api.the-odds-api.com/v4/sports/baseball_mlb/odds"
    router.get(url__startswith=odds).mock(
        return_value=samples.response(samples.odds([]), used=1, remaining=499, last=0)
    )
    client = stack(profiles=[PROFILE], config=None)
    assert info(client.get(odds, params={"regions": "us"})).ttl == 120


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[profiles.api]\nretries = 1\nmax_stale = "30x"\n',
            r"line 3: profiles\.api: ApiProfile\.max_stale",
        ),
        ("[profiles.api]\nbackoff = -5\n", r"line 2: profiles\.api: ApiProfile\.backoff"),
        (
            '[profiles.api]\nrates = [{ limit = 5, per = "thirty" }]\n',
            r"line 2: profiles\.api\.rates: Rate\.per",
        ),
        (
            '[profiles.api]\nmax_wait = { low = "1y" }\n',
            r"line 2: profiles\.api: ApiProfile\.max_wait",
        ),
        (
            "[profiles.api.freshness]\nttl = 5\nother = 1\n",
            r"line 3: profiles\.api\.freshness: other: unknown setting",
        ),
        (
            '[profiles.api.freshness]\nttl = "30x"\n',
            r"line 2: profiles\.api\.freshness: ttl: expected a duration",
        ),
    ],
)
def test_malformed_durations_in_toml_name_file_line_and_field(
    here: Path, router: respx.Router, text: str, expected: str
) -> None:
    """The file's durations go through the same parser: file, line and field named."""
    _write(here, text)
    with pytest.raises(ConfigError, match=r"quotaflow\.toml, " + expected):
        quotaflow.make_client(
            profiles=[api_profile(freshness=FixedTtl(60))],
            plugins=False,
            state_dir=here / "state",
            transport=httpx.MockTransport(router.handler),
        )


@pytest.mark.parametrize(
    ("value", "outcome"), [("1h", 3600.0), ('"5m"', 300.0), ("90", 90.0), ("30x", "max_stale")]
)
def test_environment_durations(
    here: Path, monkeypatch: pytest.MonkeyPatch, router: respx.Router, value: str, outcome: Any
) -> None:
    """QUOTAFLOW__PROFILES__API__MAX_STALE takes a duration, bare or quoted."""
    monkeypatch.setenv("QUOTAFLOW__PROFILES__API__MAX_STALE", value)

    def build() -> ApiProfile:
        with quotaflow.make_client(
            profiles=[api_profile()],
            plugins=False,
            state_dir=here / "state",
            transport=httpx.MockTransport(router.handler),
        ) as client:
            return quotaflow.plan(client, [f"{BASE}/x"]).requests[0].profile  # type: ignore[return-value]

    if isinstance(outcome, str):
        with pytest.raises(
            ConfigError, match=rf"environment: profiles\.api: ApiProfile\.{outcome}"
        ):
            build()
    else:
        assert build() == "api"
