"""State handles shared within a process (issue 16): clients on one state directory (or
one Redis URL and prefix) share one backend, counted by users, so that one client
closing never closes another's state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

import quotaflow
from quotaflow import Quota
from quotaflow._plan import _PARTS
from quotaflow._state._backend import Backend
from tests.conftest import BASE, api_profile, info
from tests.stub_server import REDIS_URL

ODDS = f"{BASE}/odds"


def _settings(router: respx.Router, state_dir: Path, **changes: Any) -> dict[str, Any]:
    return {
        "profiles": [api_profile(quota=Quota(100))],
        "plugins": False,
        "state_dir": state_dir,
        "transport": httpx.MockTransport(router.handler),
        **changes,
    }


def _backend(client: Any) -> Backend:
    return _PARTS[client].backend


def test_clients_on_one_directory_share_the_state(tmp_path: Path, router: respx.Router) -> None:
    """One backend for both; the first closing leaves the second's ledger working, and
    the quota both spent is counted once, in one place."""
    router.get(url__startswith=ODDS).respond(200, json={})
    first = quotaflow.make_client(**_settings(router, tmp_path / "s"))
    second = quotaflow.make_client(**_settings(router, tmp_path / "s"))
    assert _backend(first) is _backend(second)

    first.get(f"{ODDS}/1")
    first.close()
    answer = second.get(f"{ODDS}/2")
    with _backend(second).db.transaction() as cursor:  # type: ignore[attr-defined]
        assert cursor.execute("SELECT 1").fetchone() == (1,)  # still open
    second.close()

    assert info(answer).cost == 1
    assert info(answer).remaining == 98


def test_the_last_client_closes_it(tmp_path: Path, router: respx.Router) -> None:
    """Once every client let it go, the next client opens a new backend."""
    router.get(url__startswith=ODDS).respond(200, json={})
    first = quotaflow.make_client(**_settings(router, tmp_path / "s"))
    shared = _backend(first)
    first.close()

    again = quotaflow.make_client(**_settings(router, tmp_path / "s"))
    try:
        assert _backend(again) is not shared
        assert info(again.get(f"{ODDS}/1")).remaining == 99
    finally:
        again.close()


def test_sync_and_async_clients_share_and_other_directories_do_not(
    tmp_path: Path, router: respx.Router
) -> None:
    """A sync and an async client on one directory share it; another directory has its
    own."""
    sync = quotaflow.make_client(**_settings(router, tmp_path / "s"))
    other = quotaflow.make_client(**_settings(router, tmp_path / "t"))
    asynchronous = quotaflow.make_async_client(
        **_settings(router, tmp_path / "s", transport=httpx.MockTransport(router.async_handler))
    )
    try:
        assert _backend(asynchronous) is _backend(sync)
        assert _backend(other) is not _backend(sync)
    finally:
        sync.close()
        other.close()
        del asynchronous  # never used: nothing to close asynchronously


def test_clients_on_one_redis_prefix_share_it(
    tmp_path: Path, router: respx.Router, prefix: str
) -> None:
    """Redis: one backend (one connection pool) per URL and prefix; another prefix has
    its own, and closing one client keeps the other's working."""
    router.get(url__startswith=ODDS).respond(200, json={})
    redis = {"redis_url": REDIS_URL, "redis_prefix": prefix}
    first = quotaflow.make_client(**_settings(router, tmp_path / "s", **redis))
    second = quotaflow.make_client(**_settings(router, tmp_path / "s", **redis))
    other = quotaflow.make_client(
        **_settings(router, tmp_path / "s", redis_url=REDIS_URL, redis_prefix=f"{prefix}other:")
    )
    try:
        assert _backend(first) is _backend(second)
        assert _backend(other) is not _backend(first)
        first.close()
        assert info(second.get(f"{ODDS}/1")).remaining == 99
    finally:
        second.close()
        other.close()


@pytest.fixture
def router() -> respx.Router:
    return respx.Router(assert_all_called=False)
