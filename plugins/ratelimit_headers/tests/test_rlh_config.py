"""profiles_from_file and the plugin's entry point ($QUOTAFLOW_RATELIMIT_FILE)."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import httpx
import pytest
import respx

import quotaflow
from quotaflow import ConfigError
from quotaflow_ratelimit_headers import (
    ENV_VAR,
    FixedTtl,
    RateLimitHeaders,
    plugin_profiles,
    profiles_from_file,
)

GOOD = """
[[api]]
name = "github"
hosts = ["api.github.com"]
quota = 5000
period = "day"
rate = 10
per = 1.0
max_stale = 3600
ttl = 60

[[api]]
name = "weather"
hosts = ["api.weather.test", "*.weather.test"]
quota = 20000
period = "month"
reset_day = 15
secret_params = ["appid"]
secret_headers = ["X-Weather-Key"]
path_prefix = "/data"
windowless = "quota"

[[api]]
name = "bare"
hosts = "bare.test"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "apis.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_every_entry(tmp_path: Path) -> None:
    """Each [[api]] table becomes an ApiProfile, in order."""
    github, weather, bare = profiles_from_file(_write(tmp_path, GOOD))

    assert github.name == "github"
    assert github.hosts == ("api.github.com",)
    assert github.quota == quotaflow.Quota(5000, period="day")
    assert github.rates == (quotaflow.Rate(10, per=1.0),)
    assert github.max_stale == 3600
    assert github.freshness == FixedTtl(60)
    assert github.read_quota == RateLimitHeaders("day")

    assert weather.quota == quotaflow.Quota(20000, period="month", reset_day=15)
    assert weather.hosts == ("api.weather.test", "*.weather.test")
    assert weather.secret_params == ("appid",)
    assert weather.secret_headers == ("x-weather-key",)
    assert weather.path_prefix == "/data"
    assert weather.rates == ()
    assert weather.freshness is None
    assert weather.read_quota == RateLimitHeaders("month", windowless="quota")

    assert bare.hosts == ("bare.test",)
    assert bare.quota is None


def test_an_empty_file_lists_nothing(tmp_path: Path) -> None:
    """No [[api]] tables: no profiles."""
    assert profiles_from_file(_write(tmp_path, "# nothing yet\n")) == []


def _entry(body: str) -> str:
    return f'[[api]]\nname = "ok"\nhosts = ["ok.test"]\n\n[[api]]\n{body}\n'


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('hosts = ["x.test"]', "api[1].name"),
        ('name = "x"', "api[1].hosts"),
        ('name = ""\nhosts = ["x.test"]', "api[1].name"),
        ('name = "x"\nhosts = []', "api[1]: ApiProfile.hosts"),
        ('name = "x"\nhosts = ["a/b"]', "api[1]: ApiProfile.hosts"),
        ('name = "x"\nhosts = [1]', "api[1].hosts"),
        ('name = "x"\nhosts = ["x.test"]\nquota = 0', "api[1].quota"),
        ('name = "x"\nhosts = ["x.test"]\nquota = 1.5', "api[1].quota"),
        ('name = "x"\nhosts = ["x.test"]\nquota = true', "api[1].quota"),
        ('name = "x"\nhosts = ["x.test"]\nquota = "1000"', "api[1].quota"),
        ('name = "x"\nhosts = ["x.test"]\nquota = 5\nperiod = "week"', "api[1].period"),
        ('name = "x"\nhosts = ["x.test"]\nquota = 5\nreset_day = 32', "api[1]: Quota.reset_day"),
        ('name = "x"\nhosts = ["x.test"]\nreset_day = 3', "api[1].reset_day"),
        ('name = "x"\nhosts = ["x.test"]\nrate = 0', "api[1].rate"),
        ('name = "x"\nhosts = ["x.test"]\nper = 2', "api[1].per"),
        ('name = "x"\nhosts = ["x.test"]\nrate = 2\nper = 0', "api[1].per"),
        ('name = "x"\nhosts = ["x.test"]\nrate = 2\nper = inf', "api[1].per"),
        ('name = "x"\nhosts = ["x.test"]\nrate = 2\nburst = 3', "api[1]: Rate.burst"),
        ('name = "x"\nhosts = ["x.test"]\nttl = -1', "api[1].ttl"),
        ('name = "x"\nhosts = ["x.test"]\nttl = nan', "api[1].ttl"),
        ('name = "x"\nhosts = ["x.test"]\nmax_stale = "1y"', "api[1].max_stale"),
        ('name = "x"\nhosts = ["x.test"]\npath_prefix = "v1"', "api[1].path_prefix"),
        ('name = "x"\nhosts = ["x.test"]\nsecret_headers = [""]', "api[1].secret_headers"),
        ('name = "x"\nhosts = ["x.test"]\nquotas = 5', "api[1].quotas"),
        ('name = "x"\nhosts = ["x.test"]\nwindowless = "day"', "api[1].windowless"),
        ('name = "ok"\nhosts = ["y.test"]', "api[1].name"),
    ],
)
def test_invalid_entries_name_file_entry_and_field(tmp_path: Path, body: str, field: str) -> None:
    """ConfigError names the file, the entry's index and the field."""
    path = _write(tmp_path, _entry(body))
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {field}")):
        profiles_from_file(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[api]\nname = 1", "not valid TOML"),
        ('api = "x"', "expected [[api]] tables"),
        ("api = [1]", "api[0]: expected a table"),
        ('[server]\nhost = "x"', "unknown top-level key 'server'"),
    ],
)
def test_invalid_files(tmp_path: Path, text: str, message: str) -> None:
    """Broken TOML or the wrong layout: ConfigError naming the file."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: ") + ".*" + re.escape(message)):
        profiles_from_file(path)


def test_unreadable_file(tmp_path: Path) -> None:
    """A missing file, or one that is not UTF-8: ConfigError naming it."""
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=re.escape(str(missing))):
        profiles_from_file(missing)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[[api]]")
    with pytest.raises(ConfigError, match=re.escape(str(binary))):
        profiles_from_file(binary)


def test_entry_point_is_registered() -> None:
    """The distribution publishes plugin_profiles under quotaflow.plugins."""
    [found] = [e for e in entry_points(group="quotaflow.plugins") if e.name == "ratelimit_headers"]
    assert found.load() is plugin_profiles


def test_entry_point_without_the_variable_lists_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """$QUOTAFLOW_RATELIMIT_FILE unset (or empty): no profiles."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert plugin_profiles() == []
    monkeypatch.setenv(ENV_VAR, "")
    assert plugin_profiles() == []


def test_entry_point_reads_the_file_through_discovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, router: respx.Router
) -> None:
    """make_client with plugins on finds the file's profiles through the entry point
    (deprecated: it warns)."""
    monkeypatch.setenv(ENV_VAR, str(_write(tmp_path, GOOD)))
    route = router.get(host="api.github.com").mock(
        return_value=httpx.Response(
            200,
            json={},
            headers={"X-RateLimit-Limit": "5000;w=86400", "X-RateLimit-Remaining": "4321"},
        )
    )
    with (
        pytest.warns(DeprecationWarning, match=r"\$QUOTAFLOW_RATELIMIT_FILE is deprecated"),
        quotaflow.make_client(
            state_dir=tmp_path / "state", transport=httpx.MockTransport(router.handler)
        ) as client,
    ):
        response = client.get("https://api.github.com/rate_limit")
    assert route.call_count == 1
    info = response.extensions["quotaflow"]
    assert (info.profile, info.remaining, info.ttl) == ("github", 4321, 60)


def test_entry_point_refuses_a_bad_file_at_build_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad file named by the variable fails make_client with ConfigError naming it."""
    path = _write(tmp_path, _entry('name = "x"'))
    monkeypatch.setenv(ENV_VAR, str(path))
    with pytest.raises(ConfigError, match=re.escape(f"{path}: api[1].hosts")):
        quotaflow.make_client(state_dir=tmp_path / "state")
