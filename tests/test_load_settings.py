"""One composition root: load_settings() is where code arguments, the config file and
the environment meet; make_client, plan and status all start from what it returns."""

from __future__ import annotations

import textwrap

import attrs
import httpx
import pytest

import quotaflow
from quotaflow import ConfigError
from quotaflow._cli_status import collect
from quotaflow._plan import _PARTS
from quotaflow._settings import Settings, load_settings

from .conftest import api_profile


@pytest.fixture
def here(tmp_path, monkeypatch):
    """An empty working directory, no config or Redis in the environment."""
    monkeypatch.chdir(tmp_path)
    for name in ("QUOTAFLOW_CONFIG", "QUOTAFLOW_REDIS_URL", "QUOTAFLOW_CACHE", "QUOTAFLOW_HOME"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def write_config(here, text: str) -> None:
    (here / "quotaflow.toml").write_text(textwrap.dedent(text).lstrip())


def test_settings_are_frozen(here) -> None:
    """The settings object cannot be changed once built (attrs frozen, slotted)."""
    settings = load_settings(profiles=[api_profile()], plugins=False, state_dir=here / "s")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        settings.cache = False  # type: ignore[misc]
    assert not hasattr(settings, "__dict__")
    assert isinstance(settings, Settings)


def test_code_wins_over_file_and_environment_over_file(here, monkeypatch) -> None:
    """The file turns the cache and fallback off; the environment turns fallback back on;
    a code argument wins over both."""
    write_config(
        here,
        """
        cache = false
        fallback = false
        default_ttl = "5m"
        [profiles.api]
        retries = 2
        """,
    )
    monkeypatch.setenv("QUOTAFLOW_FALLBACK", "on")
    base = {"profiles": [api_profile()], "plugins": False, "state_dir": here / "s"}

    from_file = load_settings(**base)
    from_code = load_settings(**base, cache=True, default_ttl=30)

    assert (from_file.cache, from_file.fallback, from_file.rate_limit) == (False, True, True)
    assert from_file.rules.default_ttl == 300
    assert from_file.registry.profiles[0].retries == 2
    assert from_file.source == str(here / "quotaflow.toml")
    assert (from_code.cache, from_code.rules.default_ttl) == (True, 30)


def test_redis_url_comes_from_the_environment(here, monkeypatch) -> None:
    """redis_url: the code's, else $QUOTAFLOW_REDIS_URL (read in the one place)."""
    monkeypatch.setenv("QUOTAFLOW_REDIS_URL", "redis://127.0.0.1:1/0")
    settings = load_settings(plugins=False, state_dir=here / "s")
    assert settings.redis_url == "redis://127.0.0.1:1/0"
    assert load_settings(plugins=False, state_dir=here / "s", redis_url="x").redis_url == "x"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hot_entries", -1),
        ("max_body", "big"),
        ("retries", -2),
        ("cache", "yes"),
        ("redis_fail", "maybe"),
        ("redis_prefix", ""),
        ("clock", object()),
        ("default_ttl", "soon"),
        ("subscribers", "print"),
    ],
)
def test_bad_values_are_named_before_anything_is_made(here, field, value) -> None:
    """A bad value is a ConfigError naming its field, and no state directory is made."""
    with pytest.raises(ConfigError, match=field):
        load_settings(plugins=False, state_dir=here / "s", **{field: value})
    assert not (here / "s").exists()


def test_read_only_makes_no_state_directory(here) -> None:
    """What status reads: a missing state directory is refused, not made."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(plugins=False, state_dir=here / "typo", read_only=True)
    assert not (here / "typo").exists()


def test_client_is_built_from_the_settings(here) -> None:
    """make_client's runtime holds exactly what load_settings returned for its arguments."""
    write_config(here, "rate_limit = false\n")
    client = quotaflow.make_client(
        profiles=[api_profile()],
        plugins=False,
        state_dir=here / "s",
        transport=httpx.MockTransport(lambda request: httpx.Response(200)),
    )
    with client:
        settings = _PARTS[client].settings
        assert settings.rate_limit is False
        assert settings.directory == here / "s"
        assert [p.name for p in settings.registry.profiles] == ["api"]


def test_status_reads_the_config_file(here) -> None:
    """status sees the profiles the config file defines, as a client does."""
    write_config(
        here,
        """
        [apis.github]
        hosts = ["api.github.com"]
        quota = { limit = 5000, period = "day" }
        """,
    )
    quotaflow.make_client(plugins=False, state_dir=here / "s").close()

    statuses = collect(here / "s", None, "quotaflow")

    assert "github" in {status.profile for status in statuses}
