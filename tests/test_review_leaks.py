"""Reliability review: a request cancelled, or a cold store that fails, must leave
nothing held behind (a reservation, a lease, a single flight)."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
import respx

import quotaflow
from quotaflow._transports._limiter import Limiter

from .conftest import BASE, Harness, api_profile


def held(state: Path) -> tuple[int, int]:
    """The units set aside in the ledger for requests still out, and the leases held."""
    with sqlite3.connect(state / "state.db") as db:
        (units,) = db.execute("SELECT COALESCE(SUM(cost), 0) FROM inflight").fetchone()
        (leases,) = db.execute("SELECT COUNT(*) FROM leases").fetchone()
    return int(units), int(leases)


# Cancelled the way asyncio cancels (``wait_for``, ``Task.cancel``): the worker thread's
# result is then dropped (anyio's own cancel scopes wait for it, and get it).
@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_request_cancelled_mid_reservation_gives_its_units_back(
    tmp_path: Path, router: respx.Router, clock: quotaflow.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller gives up (``asyncio.wait_for``, a task cancelled) while the reservation
    runs in its worker thread: the worker finishes it all the same, and what it set aside
    is given back before the cancellation goes on, and the single-flight lease it took
    with it is given back too: nothing stays held for the next request to wait on."""
    router.get(url__startswith=f"{BASE}/").respond(200, json={})
    entered, go, reserved = threading.Event(), threading.Event(), threading.Event()
    before = Limiter.before

    def blocked(self: Limiter, *args: Any) -> Any:
        entered.set()
        go.wait(10)
        try:
            return before(self, *args)
        finally:
            reserved.set()

    async with quotaflow.make_async_client(
        profiles=[api_profile()],
        plugins=False,
        config=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
        clock=clock,
    ) as client:
        with monkeypatch.context() as patched:
            patched.setattr(Limiter, "before", blocked)
            task = asyncio.ensure_future(client.get(f"{BASE}/cancelled"))
            await anyio.to_thread.run_sync(entered.wait, 10)
            task.cancel()  # the worker is in the middle of the reservation
            go.set()
            with pytest.raises(asyncio.CancelledError):
                await task
            await anyio.to_thread.run_sync(reserved.wait, 10)  # the worker is done
        assert held(tmp_path) == (0, 0)


class ColdFailed(Exception):
    """The cold store failed to keep an answer."""


@pytest.mark.parametrize("reads_body", [True, False])
def test_a_cold_store_that_fails_to_keep_an_answer_lets_the_flight_go(
    stack: Callable[..., Harness],
    router: respx.Router,
    monkeypatch: pytest.MonkeyPatch,
    reads_body: bool,
) -> None:
    """The cold store raises as the leader's immutable answer is kept (read before the
    caller gets it, or as the caller reads it to the end): the leader's failure is its
    own, but its single flight lands all the same. The next identical request, forced
    past the stored answer, leads a flight of its own and goes upstream at once (before,
    it followed the stuck flight: waiting its pool timeout, or forever without one)."""
    from quotaflow._plan import _PARTS
    from quotaflow._transports import _async_stored, _sync_stored

    def broken(*args: Any) -> None:
        raise ColdFailed

    route = router.get(f"{BASE}/archive").respond(200, json={"v": 1})
    client = stack(
        profiles=[api_profile(immutable=lambda request, response: math.inf, reads_body=reads_body)]
    )
    with monkeypatch.context() as patched:
        patched.setattr(_async_stored, "cold_keep", broken)
        patched.setattr(_sync_stored, "cold_keep", broken)
        with pytest.raises(ColdFailed):
            client.get(f"{BASE}/archive")
    assert _PARTS[client.client].flights._flights == {}

    again = client.get(f"{BASE}/archive", headers={"cache-control": "no-cache"}, timeout=None)

    assert again.json() == {"v": 1}
    assert route.call_count == 2
