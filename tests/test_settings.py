"""Settings validated (issue 11): every setting from code, quotaflow.toml or the
environment is checked when the client is built, and a bad one is a ConfigError
naming its field (and, from a file, the file and line), never a raw TypeError."""

from __future__ import annotations

import json
import math
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from hypothesis import example, given, settings
from hypothesis import strategies as st

import quotaflow
from quotaflow import ConfigError, _config, _config_apply
from quotaflow_ratelimit_headers import FixedTtl

from .conftest import BASE, Harness, api_profile, info


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("limited_methods", 5),
        ("limited_methods", [1, "GET"]),
        ("limited_methods", [""]),
        ("hosts", 5),
        ("hosts", {"api.test": 1}),
        ("rates", 5),
        ("secret_params", 5),
        ("secret_headers", None),
    ],
)
def test_wrong_types_are_config_errors_naming_the_field(field: str, value: Any) -> None:
    """A value the converter cannot read: ConfigError naming ApiProfile.FIELD (it used to
    be a raw TypeError from inside attrs)."""
    with pytest.raises(ConfigError, match=rf"ApiProfile\.{field}: expected"):
        api_profile(**{field: value})


def test_limited_methods_still_take_a_name_or_a_list() -> None:
    """One name or several, any case."""
    assert api_profile(limited_methods="post").limited_methods == frozenset({"POST"})
    assert api_profile(limited_methods=("get", "Head")).limited_methods == {"GET", "HEAD"}


@pytest.mark.parametrize(
    ("value", "cached"),
    [
        ("0", False),
        ("off", False),
        ("no", False),
        ("False", False),
        ("1", True),
        ("on", True),
        ("YES", True),
        ("true", True),
    ],
)
def test_cache_flag_from_the_environment(
    stack: Callable[..., Harness],
    router: respx.Router,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    value: str,
    cached: bool,
) -> None:
    """QUOTAFLOW_CACHE takes what shells write: 0/off/no turn the cache off, 1/on/yes on."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUOTAFLOW_CACHE", value)
    route = router.get(f"{BASE}/x").respond(200, json={})
    client = stack(config=None)
    client.get(f"{BASE}/x")
    second = client.get(f"{BASE}/x")
    assert route.call_count == (1 if cached else 2)
    assert (info(second).cache == "hit") is cached


@pytest.mark.parametrize("flag", ["QUOTAFLOW_CACHE", "QUOTAFLOW_RATE_LIMIT", "QUOTAFLOW_FALLBACK"])
@pytest.mark.parametrize("value", ["maybe", "2", ""])
def test_a_bad_flag_names_the_variable(
    router: respx.Router, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, flag: str, value: str
) -> None:
    """Anything else is a ConfigError naming the variable."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(flag, value)
    with pytest.raises(ConfigError, match=rf"{flag}: expected one of 1/0"):
        quotaflow.make_client(profiles=[api_profile()], plugins=False, state_dir=tmp_path / "state")


# -- random TOML values for every profile field --

# Every field the file takes, as the configuration itself lists them: a field added
# there is fed random values here too.
FIELDS = _config._PROFILE_FIELDS
KEYS = st.sampled_from(
    ["limit", "per", "burst", "period", "reset_day", "low", "normal", "critical", "ttl", "x"]
)
WORDS = st.sampled_from(["30s", "5m", "1h", "1d", "30x", "thirty", "", "day", "month", "low"])
SCALARS = st.one_of(
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    WORDS,
    st.text(alphabet="abcxyz019 .:-", max_size=6),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=6,
)


def toml(value: Any) -> str:
    """``value`` written as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml(item) for item in value) + "]"
    return "{ " + ", ".join(f"{key} = {toml(item)}" for key, item in value.items()) + " }"


@settings(derandomize=True, database=None, max_examples=300, deadline=None)
@given(field=st.sampled_from(FIELDS), value=VALUES)
@example(field="freshness", value={"limit": 0})  # an inline sub-table: its line still named
@example(field="freshness", value={"ttl": "30x"})
@example(field="freshness", value={"ttl": "30s"})
@example(field="rates", value=5)
@example(field="rates", value=[{"limit": 5, "per": "1m"}])
@example(field="max_wait", value={"low": "30x"})
@example(field="default_ttl", value="1d")
@example(field="quota", value={"limit": 1})
def test_random_toml_values_give_a_client_or_a_config_error_naming_the_field(
    field: str, value: Any
) -> None:
    """Whatever a profile field is set to in quotaflow.toml, the client is built and
    answers (a refusal by the quota or a rate is an answer), or the build fails with a
    ConfigError naming the file, the line and the field; never another exception."""
    router = respx.Router(assert_all_called=False)
    route = router.get(f"{BASE}/x").respond(200, json={})
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "quotaflow.toml"
        path.write_text(textwrap.dedent(f"[profiles.api]\n{field} = {toml(value)}\n"))
        try:
            client = quotaflow.make_client(
                profiles=[api_profile(freshness=FixedTtl(60))],
                plugins=False,
                config=path,
                state_dir=Path(folder) / "state",
                transport=httpx.MockTransport(router.handler),
                clock=quotaflow.Clock(sleep=lambda seconds: None),
            )
        except ConfigError as error:
            message = str(error)
            assert f"{path}, line 2: profiles.api" in message, message
            assert f"profiles.api.{field}" in message or f"ApiProfile.{field}" in message, message
            return
        with client:
            try:
                response = client.get(f"{BASE}/x", extensions={"priority": "critical"})
            except (quotaflow.QuotaExhausted, quotaflow.RateLimited):
                assert route.call_count == 0
            else:
                assert response.status_code == 200
                assert route.call_count == 1
                # Other hosts, or a path_prefix other than "/x...", leave it to no profile.
                if field not in ("hosts", "path_prefix"):
                    assert info(response).profile == "api"


API_FIELDS = _config_apply._API_FIELDS


@settings(derandomize=True, database=None, max_examples=200, deadline=None)
@given(field=st.sampled_from(API_FIELDS), value=VALUES)
@example(field="headers", value="ratelimit")
@example(field="windowless", value="quota")
@example(field="hosts", value=["x.test:80"])
def test_random_toml_values_in_an_api_table(field: str, value: Any) -> None:
    """The same for a field of an [apis.NAME] table: a client that answers for the API,
    or a ConfigError naming the file, a line and the field."""
    router = respx.Router(assert_all_called=False)
    router.get(host="x.test").respond(200, json={})
    hosts = "" if field == "hosts" else 'hosts = ["x.test"]\n'
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "quotaflow.toml"
        path.write_text(f"[apis.x]\n{hosts}{field} = {toml(value)}\n")
        try:
            client = quotaflow.make_client(
                profiles=[],
                plugins=False,
                config=path,
                state_dir=Path(folder) / "state",
                transport=httpx.MockTransport(router.handler),
                clock=quotaflow.Clock(sleep=lambda seconds: None),
            )
        except ConfigError as error:
            message = str(error)
            assert f"{path}, line " in message, message
            assert f"apis.x.{field}" in message or f"ApiProfile.{field}" in message, message
            return
        with client:
            try:
                response = client.get("http://x.test/a", extensions={"priority": "critical"})
            except (quotaflow.QuotaExhausted, quotaflow.RateLimited):
                return
            # Other hosts, or a path_prefix other than "/a...", leave the URL to no profile.
            if field not in ("hosts", "path_prefix"):
                assert info(response).profile == "x"
