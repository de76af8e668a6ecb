"""The async client never touches the SQLite state file on the event loop thread."""

from __future__ import annotations

import threading

import anyio
import httpx
import pytest
import respx

import quotaflow
from quotaflow import Rate
from quotaflow._state._db import StateDB

from .conftest import BASE, api_profile


def test_state_io_runs_off_the_event_loop(tmp_path, monkeypatch, clock) -> None:
    """Ledger, limiter and lease transactions all run in worker threads."""
    threads: list[int] = []
    original = StateDB.transaction

    def spy(self: StateDB):  # type: ignore[no-untyped-def]
        threads.append(threading.get_ident())
        return original(self)

    monkeypatch.setattr(StateDB, "transaction", spy)
    router = respx.Router()
    down = router.get(f"{BASE}/down").mock(side_effect=httpx.ConnectError("down"))
    router.get(url__startswith=BASE).respond(200, json={}, headers={"x-remaining": "90"})
    loop_thread: list[int] = []

    async def main() -> None:
        loop_thread.append(threading.get_ident())
        async with quotaflow.make_async_client(
            profiles=[api_profile(rates=(Rate(1, per=1.0, burst=1),))],
            plugins=False,
            state_dir=tmp_path,
            transport=httpx.MockTransport(router.handler),
            clock=clock,
        ) as client:
            for path in ("a", "a", "b", "c"):  # miss, hit, a wait for the limiter, ...
                await client.get(f"{BASE}/{path}", extensions={"priority": "critical"})
            with pytest.raises(httpx.ConnectError):
                await client.get(f"{BASE}/down")

    anyio.run(main)

    assert down.call_count == 1
    assert threads, "the spy saw no state I/O at all"
    assert loop_thread[0] not in threads


def test_async_warm_reads_take_one_worker_thread_hop(tmp_path, monkeypatch, clock) -> None:
    """A fresh stored answer is read with blocking SQLite calls in a worker thread
    (one hop for the whole read), never on the event loop."""
    import hishel

    reads: list[int] = []
    original = hishel.SqliteStorage.get_entries

    def spy(self, key):  # type: ignore[no-untyped-def]
        reads.append(threading.get_ident())
        return original(self, key)

    monkeypatch.setattr(hishel.SqliteStorage, "get_entries", spy)
    router = respx.Router()
    route = router.get(f"{BASE}/a").respond(200, json={"v": 1})
    loop_thread: list[int] = []
    answers: list[object] = []

    async def main() -> None:
        loop_thread.append(threading.get_ident())
        async with quotaflow.make_async_client(
            profiles=[api_profile()],
            plugins=False,
            state_dir=tmp_path,
            transport=httpx.MockTransport(router.handler),
            clock=clock,
            hot_entries=0,
        ) as client:
            reads.clear()  # building the client may read synchronously (it is not async)
            await client.get(f"{BASE}/a")  # the miss stores it
            before = len(reads)
            hit = await client.get(f"{BASE}/a")
            answers.append((hit.json(), hit.extensions["quotaflow"].cache, len(reads) - before))

    anyio.run(main)

    assert answers == [({"v": 1}, "hit", 1)]
    assert route.call_count == 1
    assert loop_thread[0] not in reads
