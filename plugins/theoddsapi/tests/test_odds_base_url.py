"""OddsApi warns once when its base_url matches no profile of the quotaflow client
(issue 11: a local stub silently got no cache, rate limit or quota)."""

from __future__ import annotations

import warnings
from pathlib import Path

import attrs
import httpx
import pytest
import respx

import quotaflow
from quotaflow_theoddsapi import PROFILE, AsyncOddsApi, OddsApi

STUB = "http://127.0.0.1:18777"


def _sync(tmp_path: Path, router: respx.Router, *profiles: quotaflow.ApiProfile) -> httpx.Client:
    return quotaflow.make_client(
        profiles=list(profiles),
        plugins=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
    )


def test_a_stub_base_url_no_profile_matches_warns_once(
    tmp_path: Path, router: respx.Router
) -> None:
    """One UserWarning naming the base URL, at construction, pointing at the caller;
    the calls themselves still go (uncached: two upstream calls)."""
    route = router.get(f"{STUB}/v4/sports").mock(return_value=httpx.Response(200, json=[]))
    with _sync(tmp_path, router, PROFILE) as client:
        with pytest.warns(UserWarning, match="'http://127.0.0.1:18777' matches no profile") as seen:
            api = OddsApi(client, base_url=STUB)
        assert [warning.filename for warning in seen] == [__file__]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert api.sports() == []
            assert api.sports() == []
    assert route.call_count == 2


def test_a_profile_with_the_stub_host_and_port_is_quiet_and_caches(
    tmp_path: Path, router: respx.Router
) -> None:
    """The profile given the stub's host and port matches: no warning, the second call
    is a cache hit (one upstream call)."""
    route = router.get(f"{STUB}/v4/sports").mock(return_value=httpx.Response(200, json=[]))
    stub = attrs.evolve(PROFILE, hosts=("127.0.0.1:18777",))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with _sync(tmp_path, router, stub) as client:
            api = OddsApi(client, base_url=STUB)
            api.sports()
            api.sports()
    assert route.call_count == 1


def test_plain_clients_and_the_real_host_never_warn(tmp_path: Path, router: respx.Router) -> None:
    """A plain httpx.Client has no profiles to match; the default base URL matches PROFILE."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with httpx.Client(transport=httpx.MockTransport(router.handler)) as plain:
            OddsApi(plain, base_url=STUB)
        with _sync(tmp_path, router, PROFILE) as client:
            OddsApi(client)


@pytest.mark.anyio
async def test_async_twin_warns_once_on_its_first_call(
    tmp_path: Path, router: respx.Router
) -> None:
    """AsyncOddsApi checks on its first call (aplan must be awaited), and only then."""
    route = router.get(f"{STUB}/v4/sports").mock(return_value=httpx.Response(200, json=[]))
    client = quotaflow.make_async_client(
        profiles=[PROFILE],
        plugins=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
    )
    async with client:
        api = AsyncOddsApi(client, base_url=STUB)
        with pytest.warns(UserWarning, match="AsyncOddsApi: base_url") as seen:
            await api.sports()
        assert [warning.filename for warning in seen] == [__file__]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            await api.sports()
    assert route.call_count == 2


def test_the_stub_host_set_in_quotaflow_toml(tmp_path: Path, router: respx.Router) -> None:
    """[profiles.theoddsapi] hosts = ["127.0.0.1:18777"]: the installed profile serves
    the stub, quietly and cached."""
    route = router.get(f"{STUB}/v4/sports").mock(return_value=httpx.Response(200, json=[]))
    config = tmp_path / "quotaflow.toml"
    config.write_text('[profiles.theoddsapi]\nhosts = ["127.0.0.1:18777"]\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with quotaflow.make_client(
            profiles=[PROFILE],
            plugins=False,
            config=config,
            state_dir=tmp_path / "state",
            transport=httpx.MockTransport(router.handler),
        ) as client:
            api = OddsApi(client, base_url=STUB)
            api.sports()
            api.sports()
    assert route.call_count == 1
