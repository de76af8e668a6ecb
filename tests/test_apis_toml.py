"""New APIs defined in quotaflow.toml alone (issue 11): ``[apis.NAME]`` tables read by
the core configuration, in place of the ratelimit_headers plugin's own file."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import respx
import time_machine

import quotaflow
from quotaflow import ConfigError

from .conftest import Harness, api_profile, info
from .test_any_api import HOST, URL, fixed_window, github, ietf


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, with no config in the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QUOTAFLOW_CONFIG", raising=False)
    return tmp_path


def write(here: Path, text: str) -> Path:
    path = here / "quotaflow.toml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


GITHUB = f"""
[apis.github]
hosts = ["{HOST}"]
headers = "ratelimit"             # X-RateLimit-* or IETF RateLimit
quota = {{ limit = 1000, period = "day" }}
ttl = "30s"
max_stale = "1h"
"""


@pytest.mark.parametrize(
    ("limit", "per", "headers"), [(60, 60, github), (5, 30, ietf)], ids=["x-ratelimit", "ietf"]
)
def test_an_api_defined_in_toml_alone(
    here: Path,
    stack: Callable[..., Harness],
    router: respx.Router,
    traveller: time_machine.Traveller,
    sleeps: list[float],
    limit: int,
    per: int,
    headers: Callable[[int, float], dict[str, str]],
) -> None:
    """[apis.github]: its host is matched, answers cached for ttl, the short window
    waited for (RateLimited past max_wait), never QuotaExhausted."""
    write(here, GITHUB)
    route = router.get(host=HOST).mock(side_effect=fixed_window(limit, per, headers))
    client = stack(profiles=[], config=None)

    for n in range(limit):
        response = client.get(f"{URL}/{n}")
    assert (info(response).profile, info(response).ttl) == ("github", 30)
    assert info(client.get(f"{URL}/0")).cache == "hit"
    assert info(response).remaining == 1000 - limit
    with pytest.raises(quotaflow.RateLimited):
        client.get(f"{URL}/next")
    assert route.call_count == limit
    traveller.shift(per - 2)
    client.get(f"{URL}/next")
    assert (route.call_count, sleeps) == (limit + 1, [pytest.approx(2)])


def test_x_requests_convention_and_a_host_with_its_port(
    here: Path, stack: Callable[..., Harness], router: respx.Router
) -> None:
    """headers = "x-requests" reads the Odds-style quota headers; a host with a port."""
    write(
        here,
        """
        [apis.stub]
        hosts = ["127.0.0.1:18777"]
        headers = "x-requests"
        quota = { limit = 500, period = "month", reset_day = 15 }
        rates = [{ limit = 30, per = "1s" }]
        """,
    )
    route = router.get(host="127.0.0.1").respond(
        200,
        json=[],
        headers={"x-requests-remaining": "400", "x-requests-used": "100", "x-requests-last": "0"},
    )
    client = stack(profiles=[], config=None)
    response = client.get("http://127.0.0.1:18777/v4/sports")
    assert (info(response).profile, info(response).remaining) == ("stub", 400)
    assert info(client.get("http://127.0.0.1:18778/v4/sports")).profile == "default"
    assert route.call_count == 2


def test_apis_from_the_environment(
    here: Path, monkeypatch: pytest.MonkeyPatch, stack: Callable[..., Harness], router: respx.Router
) -> None:
    """QUOTAFLOW__APIS__NAME__FIELD defines (or changes) an API too."""
    monkeypatch.setenv("QUOTAFLOW__APIS__PLAIN__HOSTS", f'["{HOST}"]')
    monkeypatch.setenv("QUOTAFLOW__APIS__PLAIN__TTL", "5m")
    router.get(host=HOST).respond(200, json={})
    client = stack(profiles=[], config=None)
    assert (info(client.get(URL)).profile, info(client.get(URL)).cache) == ("plain", "hit")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[apis.x]\nttl = 5\n", r"line 1: apis\.x\.hosts: missing"),
        ('[apis.x]\nhosts = ["x.test"]\nspeed = 1\n', r"line 3: apis\.x\.speed: unknown setting"),
        (
            '[apis.x]\nhosts = ["x.test"]\nttl = "30x"\n',
            r"line 3: apis\.x\.ttl: expected a duration",
        ),
        ('[apis.x]\nhosts = ["x.test:99999"]\n', r"line 2: apis\.x: ApiProfile\.hosts"),
        (
            '[apis.x]\nhosts = ["x.test"]\nmax_stale = -5\n',
            r"line 3: apis\.x: ApiProfile\.max_stale",
        ),
        (
            '[apis.x]\nhosts = ["x.test"]\nrates = [{ limit = 5, per = "a minute" }]\n',
            r"line 3: apis\.x\.rates: Rate\.per",
        ),
        (
            '[apis.x]\nhosts = ["x.test"]\nheaders = "github"\n',
            r"line 3: apis\.x\.headers: expected one of 'none', 'x-requests', "
            r"'apisports', 'ratelimit'",
        ),
        (
            '[apis.x]\nhosts = ["x.test"]\nwindowless = "quota"\n',
            r"line 3: apis\.x\.windowless: only for headers = 'ratelimit'",
        ),
        (
            '[apis.x]\nhosts = ["x.test"]\nheaders = "ratelimit"\nwindowless = "day"\n',
            r"line 3: apis\.x\.headers = 'ratelimit': .*windowless",
        ),
        ('[apis.api]\nhosts = ["x.test"]\n', r"line 1: apis\.api: a profile of that name"),
        ("apis = 3\n", r"apis: expected tables \[apis\.NAME\]"),
    ],
)
def test_bad_api_tables_name_file_line_and_field(
    here: Path, router: respx.Router, text: str, expected: str
) -> None:
    """Refused when the client is built, with the file, the line and the field."""
    write(here, text)

    with pytest.raises(
        ConfigError,
        match=r"quotaflow\.toml(, line \d+)?: "
        if "line" not in expected
        else r"quotaflow\.toml, " + expected,
    ):
        quotaflow.make_client(
            profiles=[api_profile()],
            plugins=False,
            state_dir=here / "state",
            transport=httpx.MockTransport(router.handler),
        )


def test_costs_per_path_and_the_apisports_convention(here: Path, stack, router) -> None:
    """[apis.NAME] cost (a number, or path globs to units) and headers = "apisports"
    (daily quota headers, errors in 200 bodies never stored)."""
    write(
        here,
        """
        [apis.football]
        hosts = ["football.example"]
        headers = "apisports"
        quota = { limit = 100, period = "day" }
        cost = { "/v3/bulk/*" = 5, "*" = 1 }
        ttl = "1m"
        """,
    )
    router.get("https://football.example/v3/bulk/all").respond(
        200,
        json={"errors": [], "response": [1]},
        headers={"x-ratelimit-requests-limit": "100", "x-ratelimit-requests-remaining": "95"},
    )
    failing = router.get("https://football.example/v3/fixtures").respond(
        200, json={"errors": {"token": "bad key"}, "response": []}
    )
    client = stack(config=here / "quotaflow.toml", profiles=[])

    bulk = client.get("https://football.example/v3/bulk/all")
    errors = [client.get("https://football.example/v3/fixtures") for _ in range(2)]

    assert (info(bulk).profile, info(bulk).cost, info(bulk).remaining) == ("football", 5, 95)
    assert failing.call_count == 2  # an error in a 200 body is never stored
    assert all(r.json()["errors"] for r in errors)


def test_a_bad_cost_names_its_line(here: Path, stack) -> None:
    write(here, '[apis.x]\nhosts = ["x.example"]\ncost = { "/a" = -1 }\n')

    with pytest.raises(ConfigError, match=r"line 3: apis\.x\.cost"):
        stack(config=here / "quotaflow.toml", profiles=[])
