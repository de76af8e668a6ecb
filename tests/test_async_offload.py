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


def test_async_warm_reads_run_on_the_loop_unless_they_would_wait_or_write(
    tmp_path, monkeypatch, clock
) -> None:
    """A fresh stored answer is read on the event loop in one query that never waits
    for a lock nor writes (``SqliteCache.peek``: a hop to a worker thread costs more than
    the read). When it would have to (here: the entry's last use is due its once-a-minute
    write, as hishel keeps it), the read goes to a worker thread once (``fresh``), and the
    next is on the loop again. hishel's own lookup never runs on a hit."""
    import sqlite3

    import hishel

    from quotaflow._state._hishel import SqliteCache

    seen: list[tuple[str, int]] = []
    peek, fresh, lookup = SqliteCache.peek, SqliteCache.fresh, hishel.SqliteStorage.get_entries

    def spy(name, original):  # type: ignore[no-untyped-def]
        def spied(self, *args):  # type: ignore[no-untyped-def]
            seen.append((name, threading.get_ident()))
            return original(self, *args)

        return spied

    monkeypatch.setattr(SqliteCache, "peek", spy("peek", peek))
    monkeypatch.setattr(SqliteCache, "fresh", spy("fresh", fresh))
    monkeypatch.setattr(hishel.SqliteStorage, "get_entries", spy("lookup", lookup))
    router = respx.Router()
    route = router.get(f"{BASE}/a").respond(200, json={"v": 1})
    loop: list[int] = []
    hits: list[tuple[object, object, list[str]]] = []

    async def main() -> None:
        loop.append(threading.get_ident())
        async with quotaflow.make_async_client(
            profiles=[api_profile()],
            plugins=False,
            state_dir=tmp_path,
            transport=httpx.MockTransport(router.handler),
            clock=clock,
            hot_entries=0,
        ) as client:
            await client.get(f"{BASE}/a")  # the miss stores it
            for old in (False, True, False):
                if old:
                    with sqlite3.connect(tmp_path / "cache.db") as db:
                        db.execute("UPDATE entries SET last_accessed_at = 0")
                seen.clear()
                hit = await client.get(f"{BASE}/a")
                where = ["loop" if t == loop[0] else "thread" for _, t in seen]
                calls = [
                    f"{name} on the {place}" for (name, _), place in zip(seen, where, strict=True)
                ]
                hits.append((hit.json(), hit.extensions["quotaflow"].cache, calls))

    anyio.run(main)

    assert hits == [
        ({"v": 1}, "hit", ["peek on the loop"]),
        ({"v": 1}, "hit", ["peek on the loop", "fresh on the thread"]),
        ({"v": 1}, "hit", ["peek on the loop"]),
    ]
    assert route.call_count == 1
