"""Reliability review: a request cancelled, or a cold store that fails, must leave
nothing held behind (a reservation, a lease, a single flight)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
import respx

import quotaflow
from quotaflow._transports._limiter import Limiter

from .conftest import BASE, api_profile

# Cancelled the way asyncio cancels (``wait_for``, ``Task.cancel``): the worker thread's
# result is then dropped (anyio's own cancel scopes wait for it, and get it).
pytestmark = pytest.mark.parametrize("anyio_backend", ["asyncio"])


def held(state: Path) -> tuple[int, int]:
    """The units set aside in the ledger for requests still out, and the leases held."""
    with sqlite3.connect(state / "state.db") as db:
        (units,) = db.execute("SELECT COALESCE(SUM(cost), 0) FROM inflight").fetchone()
        (leases,) = db.execute("SELECT COUNT(*) FROM leases").fetchone()
    return int(units), int(leases)


@pytest.mark.anyio
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
