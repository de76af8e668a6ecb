"""hishel runs once per request: single flight is decided before it, so a miss makes
one pass through hishel, looks its storage up a known number of times, and chains no
quotaflow-internal exception into the caller's traceback."""

from __future__ import annotations

from typing import Any

import hishel
import hishel.httpx
import httpx
import pytest
import respx

from quotaflow._state._hishel import SqliteCache

from .conftest import BASE, info

URL = f"{BASE}/odds"


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys of every storage lookup (hishel's SQLite storages, sync and async, and
    the one-query fresh reads beside them: ``fresh``, or ``peek`` on the event loop; and
    the async storage's look on the event loop for any entry, ``holds_none``, which
    stands for hishel's lookup when it finds none)."""
    seen: list[str] = []
    sync_get = hishel.SqliteStorage.get_entries
    fresh, peek, holds_none = SqliteCache.fresh, SqliteCache.peek, SqliteCache.holds_none

    def fresh_spy(self: Any, key: str, *args: Any) -> Any:
        seen.append(key)
        return fresh(self, key, *args)

    def peek_spy(self: Any, key: str, *args: Any) -> Any:
        seen.append(key)
        return peek(self, key, *args)

    def holds_none_spy(self: Any, key: str) -> bool:
        empty = holds_none(self, key)
        if empty:  # else hishel's own lookup follows, counted below
            seen.append(key)
        return empty

    monkeypatch.setattr(SqliteCache, "fresh", fresh_spy)
    monkeypatch.setattr(SqliteCache, "peek", peek_spy)
    monkeypatch.setattr(SqliteCache, "holds_none", holds_none_spy)

    def counted(self: Any, key: Any) -> Any:
        seen.append(str(key))
        return sync_get(self, key)

    monkeypatch.setattr(hishel.SqliteStorage, "get_entries", counted)
    return seen


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """One entry per request hishel's transport handles (sync and async)."""
    seen: list[str] = []
    sync_handle = hishel.httpx.CacheTransport.handle_request
    async_handle = hishel.httpx.AsyncCacheTransport.handle_async_request

    def counted(self: Any, request: httpx.Request) -> Any:
        seen.append(str(request.url))
        return sync_handle(self, request)

    async def acounted(self: Any, request: httpx.Request) -> Any:
        seen.append(str(request.url))
        return await async_handle(self, request)

    monkeypatch.setattr(hishel.httpx.CacheTransport, "handle_request", counted)
    monkeypatch.setattr(hishel.httpx.AsyncCacheTransport, "handle_async_request", acounted)
    return seen


def test_a_miss_passes_through_hishel_once(stack, router: respx.Router, passes, lookups) -> None:
    """A miss: one pass through hishel and two storage lookups (the warm read, hishel's
    own: it found nothing, so there are no older answers to replace); was two passes and
    four lookups, then three. The hit that follows is answered from memory: no pass, no
    lookup."""
    route = router.get(URL).mock(return_value=httpx.Response(200, json={"v": 1}))
    client = stack()
    lookups.clear()  # building the client makes sure the storage is indexed
    first = client.get(URL)
    assert info(first).cache == "miss"
    assert len(passes) == 1
    assert len(lookups) == 2
    second = client.get(URL)
    assert info(second).cache == "hit"
    assert len(passes) == 1
    assert len(lookups) == 2
    assert route.call_count == 1


def test_a_warm_hit_looks_storage_up_once(stack, router: respx.Router, passes, lookups) -> None:
    """With no hot tier, a hit is the one warm read: hishel never runs."""
    router.get(URL).mock(return_value=httpx.Response(200, json={"v": 1}))
    client = stack(hot_entries=0)
    client.get(URL)
    passes.clear()
    lookups.clear()
    assert info(client.get(URL)).tier == "storage"
    assert passes == []
    assert len(lookups) == 1


def _chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    todo: list[BaseException | None] = [exc.__cause__, exc.__context__]
    while todo:
        item = todo.pop()
        if item is None or item in found:
            continue
        found.append(item)
        todo += [item.__cause__, item.__context__]
    return found


def test_a_failed_miss_chains_no_internal_exception(stack) -> None:
    """A miss whose upstream refuses the connection, with no stale answer to serve: the
    caller's ConnectError carries nothing of quotaflow's own in its chain."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = stack(transport=httpx.MockTransport(refuse))
    with pytest.raises(httpx.ConnectError) as caught:
        client.get(URL)
    assert _chain(caught.value) == []
