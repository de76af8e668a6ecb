"""Profiles match hosts with ports (issue 11): ``"127.0.0.1:18777"`` matches that host
on that port only, a bare host matches any port."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import respx

import quotaflow

from .conftest import Harness, api_profile, info


@pytest.fixture
def upstream(router: respx.Router) -> respx.Route:
    """Every request answers 200 (no cache headers, so nothing is stored)."""
    return router.route().mock(return_value=httpx.Response(200, json={}))


@pytest.mark.parametrize(
    ("hosts", "url", "profile"),
    [
        (("127.0.0.1:18777",), "http://127.0.0.1:18777/v1", "api"),
        (("127.0.0.1:18777",), "http://127.0.0.1:18778/v1", "default"),
        (("127.0.0.1:18777",), "http://127.0.0.1/v1", "default"),
        (("localhost:8080",), "http://localhost:8080/v1", "api"),
        (("localhost:8080",), "http://LOCALHOST:8080/v1", "api"),
        (("localhost:8080",), "http://localhost:8081/v1", "default"),
        (("localhost",), "http://localhost:8081/v1", "api"),
        (("localhost",), "http://localhost/v1", "api"),
        (("api.test:443",), "https://api.test/v1", "api"),  # the scheme's default port
        (("api.test:443",), "http://api.test/v1", "default"),
        (("api.test:80",), "http://api.test:80/v1", "api"),
        (("*.example.test:8443",), "https://eu.example.test:8443/v1", "api"),
        (("*.example.test:8443",), "https://eu.example.test/v1", "default"),
        (("[::1]:8080",), "http://[::1]:8080/v1", "api"),
        (("[::1]:8080",), "http://[::1]:9090/v1", "default"),
        (("::1",), "http://[::1]:9090/v1", "api"),
    ],
)
def test_host_and_port_decide_the_profile(
    stack: Callable[..., Harness],
    upstream: respx.Route,
    hosts: tuple[str, ...],
    url: str,
    profile: str,
) -> None:
    """The request goes upstream once, under the profile its host and port name."""
    client = stack(profiles=[api_profile(hosts=hosts, freshness=None)])
    response = client.get(url)
    assert info(response).profile == profile
    assert upstream.call_count == 1


def test_a_profile_naming_the_port_wins_over_the_bare_host(
    stack: Callable[..., Harness], upstream: respx.Route
) -> None:
    """Two profiles on one host: the one naming the port takes its port, the other the rest,
    whatever their order."""
    bare = api_profile(name="bare", hosts=("localhost",), freshness=None)
    ported = api_profile(name="ported", hosts=("localhost:8080",), freshness=None)
    client = stack(profiles=[bare, ported])
    assert info(client.get("http://localhost:8080/x")).profile == "ported"
    assert info(client.get("http://localhost:9000/x")).profile == "bare"
    assert info(client.get("http://localhost/x")).profile == "bare"
    assert upstream.call_count == 3


@pytest.mark.parametrize(
    "host", ["localhost:", "localhost:http", "localhost:0", "localhost:65536", ":8080", "[::1]x"]
)
def test_a_bad_port_is_a_config_error_naming_the_field(host: str) -> None:
    """A port that is not 1..65535, or no host before it: ConfigError on ApiProfile.hosts."""
    with pytest.raises(quotaflow.ConfigError, match=r"ApiProfile\.hosts"):
        api_profile(hosts=(host,))
