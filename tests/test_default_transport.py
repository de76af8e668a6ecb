"""Without transport=, requests go through httpx.HTTPTransport, which respx.mock patches."""

from __future__ import annotations

import httpx
import respx

import quotaflow

from .conftest import api_profile, info


def test_respx_mock_intercepts_the_default_transport(tmp_path) -> None:
    """respx.mock (patching httpcore, below HTTPTransport) sees only real upstream calls."""
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get("https://api.test/odds").respond(200, json={"v": 1})
        with quotaflow.make_client(
            profiles=[api_profile()], plugins=False, state_dir=tmp_path, timeout=5.0
        ) as client:
            first = client.get("https://api.test/odds")
            second = client.get("https://api.test/odds")

    assert route.call_count == 1
    assert (info(first).cache, info(second).cache) == ("miss", "hit")
    assert second.json() == {"v": 1}


def test_network_arguments_reach_the_default_transport(tmp_path) -> None:
    """verify/http2/limits build quotaflow's innermost transport, not httpx's ignored one."""
    with quotaflow.make_client(
        plugins=False, state_dir=tmp_path, verify=False, limits=httpx.Limits(max_connections=3)
    ) as client:
        inner = client._transport
        while hasattr(inner, "next_transport"):
            inner = inner.next_transport

    assert isinstance(inner, httpx.HTTPTransport)
    assert inner._pool._max_connections == 3
