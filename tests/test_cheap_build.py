"""Clients are cheap to build (issue 16): SSL contexts are built once per TLS setting."""

from __future__ import annotations

import asyncio
import ssl

import httpx
import pytest

import quotaflow
from quotaflow import _tls


@pytest.fixture
def built(monkeypatch) -> list[tuple[object, bool]]:
    """Each SSL context quotaflow builds, with a fresh per-process cache."""
    calls: list[tuple[object, bool]] = []
    original = httpx.create_ssl_context

    def counting(verify=True, cert=None, trust_env=True):
        calls.append((verify, trust_env))
        return original(verify=verify, cert=cert, trust_env=trust_env)

    monkeypatch.setattr(_tls, "_CONTEXTS", {})
    monkeypatch.setattr(httpx, "create_ssl_context", counting)
    return calls


def test_one_context_per_tls_setting(built, tmp_path) -> None:
    """Three clients with the default TLS settings build one context; verify=False and
    http2=True are settings of their own."""
    for _ in range(3):
        quotaflow.make_client(plugins=False, config=False, state_dir=tmp_path).close()
    assert built == [(True, True)]

    quotaflow.make_client(plugins=False, config=False, state_dir=tmp_path, verify=False).close()
    quotaflow.make_client(plugins=False, config=False, state_dir=tmp_path, http2=True).close()
    assert len(built) == 3


def test_shared_only_when_nothing_client_specific(built) -> None:
    """A context the caller gave, or a client certificate, is never shared."""
    given = ssl.create_default_context()
    assert _tls.shared_tls({"verify": given})["verify"] is given
    assert _tls.shared_tls({"cert": "client.pem"}) == {"cert": "client.pem"}
    first = _tls.shared_tls({})["verify"]
    assert _tls.shared_tls({"trust_env": True})["verify"] is first
    assert _tls.shared_tls({"http2": True})["verify"] is not first
    assert built == [(True, True), (True, True)]


def test_environment_is_part_of_the_key(built, monkeypatch) -> None:
    """With trust_env, SSL_CERT_FILE changes the context (as httpx reads it)."""
    first = _tls.shared_tls({})["verify"]
    monkeypatch.setenv("SSL_CERT_DIR", "/nonexistent-ca-dir")
    assert _tls.shared_tls({})["verify"] is not first
    assert _tls.shared_tls({"trust_env": False})["verify"] is not first


def test_a_transport_given_builds_no_context(built, tmp_path) -> None:
    """With transport=, quotaflow builds no network transport and no context."""
    mock = httpx.MockTransport(lambda request: httpx.Response(200))
    quotaflow.make_client(plugins=False, config=False, state_dir=tmp_path, transport=mock).close()
    assert built == []


def innermost(client: httpx.Client) -> object:
    """The transport at the bottom of a client's stack."""
    inner: object = client._transport
    while hasattr(inner, "next_transport"):
        inner = inner.next_transport
    return inner


@pytest.fixture
def pools(monkeypatch) -> dict:
    """A fresh registry of shared pools."""
    from quotaflow import _pools

    fresh: dict = {}
    monkeypatch.setattr(_pools, "_POOLS", fresh)
    return fresh


def test_clients_with_the_same_settings_share_a_pool(pools, tmp_path, monkeypatch) -> None:
    """Two clients share one HTTPTransport; closing one leaves the other's open; the
    pool closes with the last."""
    closed: list[object] = []
    monkeypatch.setattr(httpx.HTTPTransport, "close", lambda self: closed.append(self))
    settings = {"plugins": False, "config": False, "state_dir": tmp_path}
    first = quotaflow.make_client(**settings)
    second = quotaflow.make_client(**settings)
    other = quotaflow.make_client(**settings, http2=True)

    shared = innermost(first)
    assert type(shared) is httpx.HTTPTransport
    assert innermost(second) is shared
    assert innermost(other) is not shared

    first.close()
    first.close()  # closing twice lets go once
    assert closed == []
    second.close()
    assert closed == [shared]
    other.close()
    assert pools == {}


def test_a_client_refused_at_build_lets_go_of_the_pool(pools, tmp_path) -> None:
    """A bad setting found after the network transport was taken leaves no user behind."""
    with pytest.raises(quotaflow.ConfigError, match="retries"):
        quotaflow.make_client(plugins=False, config=False, state_dir=tmp_path, retries=-1)
    assert pools == {}


def test_async_clients_do_not_share(pools, tmp_path) -> None:
    """An async pool belongs to its event loop: each async client has its own."""
    settings = {"plugins": False, "config": False, "state_dir": tmp_path}
    first = quotaflow.make_async_client(**settings)
    second = quotaflow.make_async_client(**settings)
    try:
        assert innermost(first) is not innermost(second)  # type: ignore[arg-type]
        assert pools == {}
    finally:
        asyncio.run(_close_both(first, second))


async def _close_both(*clients: httpx.AsyncClient) -> None:
    for client in clients:
        await client.aclose()
