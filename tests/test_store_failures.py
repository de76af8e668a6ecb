"""A stored answer's rows when a write fails or the cache is full (``_hishel_store``):
never a body with a chunk missing, and hishel's cleanup kept even when it made too
little room to store this answer, and no connection lock taken on the event loop
(review of the one-transaction store)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import hishel
import pytest
import respx

from quotaflow._state import _hishel_store
from quotaflow._state._hishel import SqliteCache
from quotaflow._state._hishel_async import AsyncSqliteCache

from .conftest import BASE, Harness, info

BIG = bytes(range(256)) * 1200  # 300 KiB: three of hishel's 128 KiB stored chunks


def test_a_failed_chunk_write_never_stores_the_rest_of_the_body(
    stack: Callable[..., Harness], router: respx.Router, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The body arrives in one piece (a mock or ASGI transport's way), two stored chunks
    due at once. The first one's write fails (another process's lock outlasted the
    wait): the second must not be written as the entry's first chunk and the answer
    shown, truncated, to every later read."""
    rows = _hishel_store._rows
    calls: list[bool] = []

    def locked_once(*args: object) -> bool:
        calls.append(True)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        return rows(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(_hishel_store, "_rows", locked_once)
    route = router.get(f"{BASE}/big").respond(
        200, content=BIG, headers={"cache-control": "max-age=60"}
    )
    client = stack(hot_entries=0)
    assert client.get(f"{BASE}/big").content == BIG  # served whole, unstored
    again = client.get(f"{BASE}/big")
    assert again.content == BIG
    assert info(again).cache != "hit"
    assert route.call_count == 2


def _answer(storage: SqliteCache, key: str, body: bytes) -> None:
    request = hishel.Request(method="GET", url=f"{BASE}/{key}")
    response = hishel.Response(status_code=200, stream=iter([body]))
    stream = storage.create_entry(request, response, key, ttl=600).response.stream
    assert b"".join(stream) == body  # type: ignore[arg-type]


def test_cleanup_that_makes_too_little_room_is_kept(tmp_path: Path) -> None:
    """hishel's cleanup before a store commits what it deleted even when the cache is
    still too big for the new answer: the next store goes on from there. Rolled back
    with the store, a cache more than one cleanup's worth over its size (200 entries)
    deleted nothing, ever, and stored nothing again."""
    storage = SqliteCache(tmp_path / "cache.db")
    cursor = storage._ensure_connection().cursor()
    empty = storage._database_size(cursor)
    for i in range(250):
        _answer(storage, f"old{i}", bytes([i % 256]) * 8192)
    full = storage._database_size(cursor)
    cursor.execute("UPDATE entries SET last_accessed_at = 0")  # long unused: evictable
    # Room once all 250 old entries are gone, not once 200 are.
    storage.max_size = empty + (full - empty) // 25
    _answer(storage, "new1", b"x" * 100)
    assert storage.get_entries("new1") == []  # no room yet
    (left,) = cursor.execute("SELECT COUNT(*) FROM entries").fetchone()
    assert left == 50  # hishel's cleanup of one store: 20 batches of 10
    _answer(storage, "new2", b"y" * 100)
    (entry,) = storage.get_entries("new2")
    assert b"".join(entry.response.stream) == b"y" * 100  # type: ignore[arg-type]
    storage.close()


def test_an_async_store_takes_no_connection_lock_on_the_event_loop(tmp_path: Path) -> None:
    """The async storage's connection lock is held by worker threads for a whole store,
    waiting up to ``BUSY_TIMEOUT`` for another process's: a new answer's entry is made
    on the event loop without it, so a miss never stalls the loop behind another's
    store. Its rows are written, and read back, in worker threads."""
    storage = AsyncSqliteCache(tmp_path / "cache.db")
    lock = storage.blocking._lock
    loop = threading.get_ident()  # anyio.run runs its loop in this thread
    on_loop: list[bool] = []

    class Watched:
        def __enter__(self) -> bool:
            on_loop.append(threading.get_ident() == loop)
            return lock.__enter__()

        def __exit__(self, *exc: object) -> None:
            lock.__exit__(*exc)  # type: ignore[arg-type]

    storage.blocking._lock = Watched()  # type: ignore[assignment]

    async def body() -> AsyncIterator[bytes]:
        yield b"a" * 100

    async def main() -> bytes:
        request = hishel.Request(method="GET", url=f"{BASE}/a")
        response = hishel.Response(status_code=200, stream=body())
        entry = await storage.create_entry(request, response, "key", ttl=60)
        assert isinstance(entry.response.stream, AsyncIterator)
        assert b"".join([chunk async for chunk in entry.response.stream]) == b"a" * 100
        (stored,) = await storage.get_entries("key")
        assert isinstance(stored.response.stream, AsyncIterator)
        return b"".join([chunk async for chunk in stored.response.stream])

    assert anyio.run(main) == b"a" * 100
    assert on_loop  # taken...
    assert not any(on_loop)  # ...only off the loop
    anyio.run(storage.close)
