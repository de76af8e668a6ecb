"""Without transport=, requests take the proxies httpx.Client would take with the same
arguments: proxy=, else (trust_env) HTTP_PROXY/HTTPS_PROXY/ALL_PROXY with NO_PROXY.

Real sockets on 127.0.0.1 only: a proxy stub that records what reaches it, and an origin
stub for the requests that go direct."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest

import quotaflow
from quotaflow import _network

from .conftest import Harness, api_profile, files_under, info
from .stub_server import LocalServer, StubServer
from .test_secrets_everywhere import assert_clean

SECRET = "odds-key-5f1e2d3c4b5a69788796a5b4c3d2e1f0"
# Nothing listens on port 1: a request sent there fails at once.
NOWHERE = "http://127.0.0.1:1"


class ProxyStub(LocalServer):
    """An HTTP proxy on 127.0.0.1 that records each request line and answers it itself.

    A plain-HTTP request arrives in absolute form (``GET http://host/path``) and gets a
    200; a CONNECT (how https:// goes through a proxy) gets a 502, so no tunnel opens.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.headers: list[dict[str, str]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def record(self) -> None:
                stub.lines.append(self.requestline)
                stub.headers.append({k.lower(): v for k, v in self.headers.items()})

            def do_GET(self) -> None:
                self.record()
                body = json.dumps({"via": "proxy"}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_CONNECT(self) -> None:
                self.record()
                self.send_response(502)
                self.send_header("content-length", "0")
                self.end_headers()
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._serve(Handler)
        self.url = self.base


@pytest.fixture
def proxy() -> Iterator[ProxyStub]:
    """A running proxy stub."""
    with ProxyStub() as stub:
        yield stub


@pytest.fixture
def origin() -> Iterator[StubServer]:
    """A running origin server, for the requests that go direct."""
    with StubServer() as stub:
        yield stub


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    """Each test once with the sync client, once with the async one."""
    return str(request.param)


@pytest.fixture
def portal() -> Iterator[Any]:
    """An event loop in a thread, for driving the async client from a sync test."""
    with anyio.from_thread.start_blocking_portal() as portal:
        yield portal


@pytest.fixture
def open_client(mode: str, portal: Any, tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    """``open_client(**make_client_kwargs)``: a quotaflow client, sync or async, with no
    transport=, so quotaflow builds the network transport itself."""
    harnesses: list[Harness] = []

    def open_(**kwargs: Any) -> Harness:
        factory = quotaflow.make_client if mode == "sync" else quotaflow.make_async_client
        settings: dict[str, Any] = {
            "profiles": [api_profile()],
            "plugins": False,
            "state_dir": tmp_path / "state",
            "config": False,
            "timeout": 5.0,
        }
        harness = Harness(mode, portal, factory).open(**{**settings, **kwargs})
        harnesses.append(harness)
        return harness

    yield open_
    for harness in harnesses:
        harness.close()


def innermost(client: httpx.Client | httpx.AsyncClient) -> Any:
    """The transport below quotaflow's layers: the one it built for the network."""
    inner: Any = client._transport
    while hasattr(inner, "next_transport"):
        inner = inner.next_transport
    return inner


def test_http_proxy_gets_the_real_request_and_the_state_never_sees_the_key(
    open_client, proxy, tmp_path, monkeypatch, caplog
) -> None:
    """HTTP_PROXY: the proxy gets the absolute-form URL with the real apiKey (secrets are
    restored below the cache); a repeat is a cache hit; no state file or log has the key."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    client = open_client()

    first = client.get("http://api.test/odds", params={"regions": "us", "apiKey": SECRET})
    second = client.get("http://api.test/odds", params={"regions": "us", "apiKey": SECRET})
    client.close()

    assert first.json() == {"via": "proxy"}
    assert (info(first).cache, info(second).cache) == ("miss", "hit")
    assert proxy.lines == [f"GET http://api.test/odds?regions=us&apiKey={SECRET} HTTP/1.1"]
    assert proxy.headers[0]["host"] == "api.test"
    for path, content in files_under(tmp_path / "state").items():
        assert_clean(content, str(path))
    for record in caplog.records:
        assert_clean(record.getMessage(), f"log record {record.name}")


def test_https_proxy_gets_a_connect_for_the_host(open_client, proxy, monkeypatch) -> None:
    """HTTPS_PROXY (lower case too): an https:// request opens a CONNECT tunnel through it;
    the stub refuses, and the refusal surfaces as httpx.ProxyError."""
    monkeypatch.setenv("https_proxy", proxy.url)
    client = open_client()

    with pytest.raises(httpx.ProxyError):
        client.get("https://api.test/odds", params={"apiKey": SECRET})

    assert proxy.lines == ["CONNECT api.test:443 HTTP/1.1"]


def test_no_proxy_sends_listed_hosts_direct(open_client, proxy, origin, monkeypatch) -> None:
    """NO_PROXY: a listed host goes direct, the others still through the proxy."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "example.com, 127.0.0.1")
    client = open_client()

    direct = client.get(f"{origin.base}/direct")
    proxied = client.get("http://api.test/odds")

    assert direct.json() == {"path": "/direct"}
    assert proxied.json() == {"via": "proxy"}
    assert origin.hits == {"/direct": 1}
    assert proxy.lines == ["GET http://api.test/odds HTTP/1.1"]


def test_trust_env_false_ignores_the_variables(open_client, proxy, origin, monkeypatch) -> None:
    """trust_env=False: the proxy variables are not read; the client says so too."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("ALL_PROXY", proxy.url)
    client = open_client(trust_env=False)

    response = client.get(f"{origin.base}/direct")

    assert response.json() == {"path": "/direct"}
    assert proxy.lines == []
    assert client.client.trust_env is False


def test_explicit_proxy_wins_over_the_environment(open_client, proxy, monkeypatch) -> None:
    """proxy= takes every request, whatever HTTP_PROXY and NO_PROXY say (as in httpx)."""
    monkeypatch.setenv("HTTP_PROXY", NOWHERE)
    monkeypatch.setenv("NO_PROXY", "api.test")
    client = open_client(proxy=proxy.url)

    response = client.get("http://api.test/odds", params={"apiKey": SECRET})

    assert response.json() == {"via": "proxy"}
    assert proxy.lines == [f"GET http://api.test/odds?apiKey={SECRET} HTTP/1.1"]


SCENARIOS = [
    pytest.param({"HTTP_PROXY": "{proxy}"}, {}, id="http_proxy"),
    pytest.param({"http_proxy": "{proxy}", "NO_PROXY": "localhost"}, {}, id="no_localhost"),
    pytest.param({"ALL_PROXY": "{proxy}", "no_proxy": "127.0.0.1"}, {}, id="all_no_ipv4"),
    pytest.param({"HTTPS_PROXY": "{proxy}"}, {}, id="https_only"),
    pytest.param({"HTTP_PROXY": "{proxy}", "NO_PROXY": "*"}, {}, id="no_star"),
    pytest.param({"HTTP_PROXY": "{proxy}", "NO_PROXY": ".localhost"}, {}, id="no_subdomains"),
    pytest.param({"HTTP_PROXY": "{proxy}"}, {"trust_env": False}, id="trust_env_false"),
    pytest.param({"NO_PROXY": "localhost"}, {"proxy": "{proxy}"}, id="explicit"),
]


@pytest.mark.parametrize(("environment", "arguments"), SCENARIOS)
def test_routes_as_httpx_client_does(
    mode, portal, proxy, origin, tmp_path, monkeypatch, environment, arguments
) -> None:
    """For each setting, every URL reaches the same place (proxy or origin) through
    quotaflow as through a plain httpx client built with the same arguments."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value.format(proxy=proxy.url))
    arguments = {k: v.format(proxy=proxy.url) if k == "proxy" else v for k, v in arguments.items()}
    port = origin.base.rsplit(":", 1)[1]
    plain = httpx.Client if mode == "sync" else httpx.AsyncClient
    qf = quotaflow.make_client if mode == "sync" else quotaflow.make_async_client
    qf_settings = {"plugins": False, "state_dir": tmp_path / "state", "config": False}

    places: dict[str, list[str]] = {}
    for name, factory, settings in (("httpx", plain, {}), ("quotaflow", qf, qf_settings)):
        client = Harness(mode, portal, factory).open(timeout=5.0, **settings, **arguments)
        for host in ("127.0.0.1", "localhost"):
            path = f"/{name}/{host}"
            before = len(proxy.lines)
            client.get(f"http://{host}:{port}{path}")
            reached = "proxy" if len(proxy.lines) > before else "origin"
            assert origin.hits[path] == (reached == "origin")
            places.setdefault(name, []).append(reached)
        client.close()

    assert places["quotaflow"] == places["httpx"]


def test_proxy_transports_share_the_network_arguments_and_close(
    mode, portal, tmp_path, monkeypatch
) -> None:
    """One transport per proxy pattern, built once with limits/verify like the default
    one; closing the client closes every one of them."""
    monkeypatch.setenv("HTTP_PROXY", NOWHERE)
    monkeypatch.setenv("HTTPS_PROXY", NOWHERE)
    monkeypatch.setenv("NO_PROXY", "localhost")
    factory = quotaflow.make_client if mode == "sync" else quotaflow.make_async_client
    limits = httpx.Limits(max_connections=3)
    client = Harness(mode, portal, factory).open(
        plugins=False, state_dir=tmp_path, config=False, limits=limits, verify=False
    )
    router = innermost(client.client)
    router_kind = _network.ProxyRouter if mode == "sync" else _network.AsyncProxyRouter
    assert isinstance(router, router_kind)
    transports = [router.default, *(t for _, t in router.mounts if t is not None)]
    assert len(transports) == 3  # direct, http://, https://; NO_PROXY maps to direct
    assert [p.pattern for p, _ in router.mounts] == ["all://localhost", "https://", "http://"]
    closed: list[object] = []
    for transport in transports:
        assert transport._pool._max_connections == 3
        assert transport._pool._ssl_context.verify_mode.name == "CERT_NONE"
        pool_close = "close" if mode == "sync" else "aclose"
        original = getattr(transport._pool, pool_close)

        def spy(original: Any = original, transport: object = transport) -> Any:
            closed.append(transport)
            return original()

        monkeypatch.setattr(transport._pool, pool_close, spy)

    client.close()

    assert closed == transports


def test_without_proxies_the_transport_is_plain(tmp_path, monkeypatch) -> None:
    """No proxy variable (NO_PROXY alone routes nothing): the plain HTTPTransport."""
    monkeypatch.setenv("NO_PROXY", "localhost")
    with quotaflow.make_client(plugins=False, state_dir=tmp_path, config=False) as client:
        assert type(innermost(client)) is httpx.HTTPTransport


def test_ssl_variables_reach_the_transport_as_in_httpx(tmp_path, monkeypatch) -> None:
    """SSL_CERT_FILE is read with trust_env (httpx fails on a missing file at build
    time, and so does quotaflow, before opening any state), ignored without."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(FileNotFoundError):
        httpx.Client()
    with pytest.raises(FileNotFoundError):
        quotaflow.make_client(plugins=False, state_dir=tmp_path / "state", config=False)
    assert not (tmp_path / "state").exists()

    with quotaflow.make_client(
        plugins=False, state_dir=tmp_path / "state", config=False, trust_env=False
    ) as client:
        assert type(innermost(client)) is httpx.HTTPTransport


class TestWithoutHttpxHelpers:
    """Should httpx drop its private proxy helpers, nothing is bypassed silently."""

    @pytest.fixture(autouse=True)
    def _gone(self, monkeypatch) -> None:
        monkeypatch.setattr(_network, "_httpx_private", lambda: None)

    def test_proxy_variables_are_refused_before_any_state(self, tmp_path, monkeypatch) -> None:
        """HTTPS_PROXY set: ConfigError naming trust_env and the variable; no state opened."""
        monkeypatch.setenv("HTTPS_PROXY", NOWHERE)
        with pytest.raises(quotaflow.ConfigError, match=r"trust_env: HTTPS_PROXY set"):
            quotaflow.make_client(plugins=False, state_dir=tmp_path / "state", config=False)
        assert not (tmp_path / "state").exists()

    def test_explicit_proxy_and_no_variables_still_work(
        self, open_client, proxy, monkeypatch
    ) -> None:
        """proxy= needs no private helper; trust_env=False and NO_PROXY=* read nothing."""
        monkeypatch.setenv("HTTP_PROXY", NOWHERE)
        open_client(trust_env=False).close()
        monkeypatch.setenv("NO_PROXY", "*")
        open_client().close()
        client = open_client(proxy=proxy.url)

        assert client.get("http://api.test/odds").json() == {"via": "proxy"}
        assert proxy.lines == ["GET http://api.test/odds HTTP/1.1"]
