"""Clients are cheap to build (issue 16): SSL contexts are built once per TLS setting."""

from __future__ import annotations

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
