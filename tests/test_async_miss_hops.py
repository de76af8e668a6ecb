"""An async miss of a new key hops to a worker thread only for what writes: the ledger's
reservation (with the lease), its settle, and the store. Whether anything is stored or
kept cold under the key is seen on the event loop, on connections that never wait; when
something is (or the loop cannot tell), the lookup hops as before and finds it."""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
import respx

import quotaflow
from quotaflow._state._hishel import SqliteCache
from quotaflow._state._sqlite_cold import SqliteColdStore

from .conftest import BASE, api_profile


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The functions run in worker threads, by name."""
    seen: list[str] = []
    original = anyio.to_thread.run_sync

    async def spy(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(function, "__qualname__", repr(function)))
        return await original(function, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", spy)
    return seen


def _kept_for_good(request: httpx.Request, response: httpx.Response) -> float | None:
    return math.inf if request.url.path.startswith("/final") else None


def _client(tmp_path: Any, router: respx.Router, clock: quotaflow.Clock, **profile: Any) -> Any:
    return quotaflow.make_async_client(
        profiles=[api_profile(immutable=_kept_for_good, **profile)],  # a cold store too
        plugins=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
        clock=clock,
    )


def test_an_async_miss_hops_only_to_write(tmp_path, hops, clock) -> None:
    router = respx.Router()
    route = router.get(url__startswith=BASE).respond(200, json={"v": 1})
    made: list[list[str]] = []

    async def main() -> None:
        async with _client(tmp_path, router, clock) as client:
            await client.get(f"{BASE}/warm-up")
            for path in ("a", "b"):
                hops.clear()
                answer = await client.get(f"{BASE}/{path}")
                assert answer.json() == {"v": 1}
                assert answer.extensions["quotaflow"].cache == "miss"
                made.append(list(hops))

    anyio.run(main)

    # No hop for hishel's lookup (get_entries) nor for the cold and fresh reads (look_up).
    assert made == [["_Taking.run", "Limiter.answered", "SqliteCache.write_rows"]] * 2
    assert route.call_count == 3


def test_a_stored_entry_is_still_looked_up_and_revalidated(tmp_path, hops, clock) -> None:
    """Something stored under the key, to revalidate before each use (the origin's
    ``no-cache``; the profile adds no freshness): hishel's lookup hops and finds it."""
    router = respx.Router()
    answers = iter(
        [
            httpx.Response(
                200, json={"v": 1}, headers={"etag": '"1"', "cache-control": "no-cache"}
            ),
            httpx.Response(304, headers={"etag": '"1"'}),
        ]
    )
    validators: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        validators.append(request.headers.get("if-none-match"))  # as it was sent
        return next(answers)

    router.get(f"{BASE}/a").mock(side_effect=answer)
    found: list[tuple[Any, str, bool]] = []

    async def main() -> None:
        async with _client(tmp_path, router, clock, freshness=None, default_ttl=None) as client:
            for _ in range(2):
                hops.clear()
                answer = await client.get(f"{BASE}/a")
                found.append(
                    (
                        answer.json(),
                        answer.extensions["quotaflow"].cache,
                        "SqliteCache.get_entries" in hops,
                    )
                )

    anyio.run(main)

    assert validators == [None, '"1"']
    assert found == [({"v": 1}, "miss", False), ({"v": 1}, "revalidated", True)]


def test_an_answer_kept_cold_is_still_found(tmp_path, hops, clock) -> None:
    router = respx.Router()
    route = router.get(f"{BASE}/final").respond(200, json={"final": True})

    async def main() -> list[str]:
        async with _client(tmp_path, router, clock) as client:
            await client.get(f"{BASE}/final")
        # A new client: nothing in memory; the cold store holds it.
        async with _client(tmp_path, router, clock) as client:
            hops.clear()
            answer = await client.get(f"{BASE}/final")
            assert answer.json() == {"final": True}
            assert answer.extensions["quotaflow"].cache == "hit"
            return list(hops)

    seen = anyio.run(main)

    assert route.call_count == 1
    assert "look_up" in seen  # the cold store was read, off the loop


def test_when_the_loop_cannot_tell_the_lookups_hop(tmp_path, hops, clock, monkeypatch) -> None:
    """Unsure (here: the never-waiting connections are in use by another thread), the
    lookups go to a worker thread as before, and the miss is the same."""
    monkeypatch.setattr(SqliteCache, "holds_none", lambda self, key: False)
    monkeypatch.setattr(SqliteColdStore, "holds_none", lambda self, key: False)
    router = respx.Router()
    route = router.get(url__startswith=BASE).respond(200, json={"v": 1})

    async def main() -> list[str]:
        async with _client(tmp_path, router, clock) as client:
            hops.clear()
            answer = await client.get(f"{BASE}/a")
            assert answer.json() == {"v": 1}
            return list(hops)

    seen = anyio.run(main)

    assert route.call_count == 1
    assert seen[:2] == ["look_up", "SqliteCache.get_entries"]


def test_holds_none_never_waits_and_says_unsure(tmp_path) -> None:
    cold = SqliteColdStore(tmp_path / "cold.db", max_bytes=2**20)
    cache = SqliteCache(tmp_path / "cache.db")
    try:
        assert cold.holds_none("k")
        assert cache.holds_none("k")
        cold.put("k", httpx.Response(200, content=b"x"), b"x", now=0.0, keep_for=math.inf)
        assert not cold.holds_none("k")
        # Another thread reads on the never-waiting connections: unsure, not blocked.
        for store in (cold, cache):
            with store._peek_lock:
                answers: list[bool] = []
                asking = threading.Thread(
                    target=lambda s=store, a=answers: a.append(s.holds_none("o"))
                )
                asking.start()
                asking.join(5)
                assert answers == [False]
        # A file whose write lock another connection holds is still read (WAL).
        with sqlite3.connect(tmp_path / "cold.db", isolation_level=None) as writer:
            writer.execute("BEGIN IMMEDIATE")
            assert cold.holds_none("other")
            writer.execute("ROLLBACK")
    finally:
        cold.close()
        cache.close()


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_warm_hits_look_at_the_cold_store_once_a_while(
    tmp_path, monkeypatch, clock, flavour
) -> None:
    """A profile keeping some answers cold: once the cold store is seen not to hold a
    key, the warm hits that follow for a while do not look again."""
    looks: list[str] = []
    holds_none, get = SqliteColdStore.holds_none, SqliteColdStore.get

    def counted_holds_none(self: SqliteColdStore, key: str) -> bool:
        looks.append("holds_none")
        return holds_none(self, key)

    def counted_get(self: SqliteColdStore, key: str, now: float, **kw: Any) -> Any:
        looks.append("get")
        return get(self, key, now, **kw)

    monkeypatch.setattr(SqliteColdStore, "holds_none", counted_holds_none)
    monkeypatch.setattr(SqliteColdStore, "get", counted_get)
    router = respx.Router()
    route = router.get(f"{BASE}/a").respond(200, json={"v": 1})
    settings: dict[str, Any] = {
        "profiles": [api_profile(immutable=_kept_for_good)],
        "plugins": False,
        "state_dir": tmp_path,
        "transport": httpx.MockTransport(router.handler),
        "clock": clock,
        "hot_entries": 0,
    }
    tiers: list[str] = []
    if flavour == "sync":
        with quotaflow.make_client(**settings) as client:
            for _ in range(4):
                tiers.append(client.get(f"{BASE}/a").extensions["quotaflow"].tier)
    else:

        async def main() -> None:
            async with quotaflow.make_async_client(**settings) as client:
                for _ in range(4):
                    tiers.append((await client.get(f"{BASE}/a")).extensions["quotaflow"].tier)

        anyio.run(main)

    assert route.call_count == 1
    assert tiers[1:] == ["storage"] * 3
    assert len(looks) <= 2  # the miss's look, and at most one more
