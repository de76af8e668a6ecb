"""A stored answer goes into ``cache.db`` in one transaction (``_state/_hishel_store``):
hishel's cleanup, the entry, its shape and its body together once the body has ended;
a body past one stored chunk as hishel writes it, hidden until its last chunk."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import hishel
import pytest
import respx

from quotaflow import Rate
from quotaflow._state._hishel import SqliteCache

from .conftest import BASE, Harness, api_profile, info

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"
BIG = bytes(range(256)) * 1200  # 300 KiB: three of hishel's 128 KiB stored chunks


def rows(state: Path, table: str) -> int:
    with sqlite3.connect(state / "cache.db") as connection:
        (count,) = connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    return int(count)


def test_a_miss_stores_its_answer_in_one_transaction(
    stack: Callable[..., Harness],
    router: respx.Router,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Counted as ``benchmarks/paths.py`` counts them: each miss begins one write
    transaction on cache.db (hishel's own store made five); each answer is then read
    back whole from storage (no hot tier), its shape beside it."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import paths

    route = router.get(url__startswith=f"{BASE}/m").respond(200, json={"v": 1})
    with paths.sql_traced() as counts:
        client = stack(profiles=[api_profile(rates=(Rate(100, per=1.0),))], hot_entries=0)
        client.get(f"{BASE}/m-warm")
        counts.clear()
        for i in range(5):
            client.get(f"{BASE}/m{i}")
        assert counts[("cache.db", "writes")] == 5
    for i in range(5):
        again = client.get(f"{BASE}/m{i}")
        assert (again.json(), info(again).cache) == ({"v": 1}, "hit")
    assert route.call_count == 6
    assert rows(tmp_path / "state", "entries") == rows(tmp_path / "state", "quotaflow_shapes")


def test_a_body_past_one_chunk_is_stored_and_read_back(
    stack: Callable[..., Harness], router: respx.Router, tmp_path: Path
) -> None:
    route = router.get(f"{BASE}/big").respond(
        200, content=BIG, headers={"cache-control": "max-age=60"}
    )
    client = stack(hot_entries=0)
    assert client.get(f"{BASE}/big").content == BIG
    again = client.get(f"{BASE}/big")
    assert (again.content, info(again).cache) == (BIG, "hit")
    assert route.call_count == 1
    assert rows(tmp_path / "state", "streams") == 3


def test_a_body_left_unread_is_not_stored(tmp_path: Path) -> None:
    """The reader stops after two of a body's three stored chunks (written hidden, as
    hishel writes them): its rows go, and nothing is ever shown under its key; a body
    read to its end is shown."""
    storage = SqliteCache(tmp_path / "cache.db")
    request = hishel.Request(method="GET", url=f"{BASE}/big")

    def answer() -> hishel.Response:
        parts = [BIG[:150_000], BIG[150_000:280_000], BIG[280_000:]]
        return hishel.Response(status_code=200, stream=iter(parts))

    stream = storage.create_entry(request, answer(), "key", ttl=60).response.stream
    assert isinstance(stream, Iterator)
    assert next(stream)
    assert next(stream)
    assert rows(tmp_path, "entries") == 1  # hidden: two chunks written
    assert storage.get_entries("key") == []
    stream.close()  # type: ignore[attr-defined]
    assert (rows(tmp_path, "entries"), rows(tmp_path, "streams")) == (0, 0)

    stream = storage.create_entry(request, answer(), "key", ttl=60).response.stream
    assert b"".join(stream) == BIG  # type: ignore[arg-type]
    (entry,) = storage.get_entries("key")
    assert b"".join(entry.response.stream) == BIG  # type: ignore[arg-type]
    storage.close()


def test_a_miss_looks_its_key_up_once_and_a_refresh_still_replaces(
    stack: Callable[..., Harness],
    router: respx.Router,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """hishel's lookup found nothing: the policy half does not look again before
    storing (``FOUND_NOTHING``). A forced refresh, whose lookup found the old answer,
    still removes it: one answer shown under the key."""
    looked: list[str] = []
    get_entries = hishel.SqliteStorage.get_entries

    def spy(self: SqliteCache, key: str) -> list[hishel.Entry]:
        if key:  # not the set-up of the file
            looked.append(key)
        return get_entries(self, key)

    holds_none = SqliteCache.holds_none

    def seen_empty(self: SqliteCache, key: str) -> bool:
        """The async stack's look on the event loop (a new key costs it no hop)."""
        empty = holds_none(self, key)
        if empty:
            looked.append(key)
        return empty

    monkeypatch.setattr(hishel.SqliteStorage, "get_entries", spy)
    monkeypatch.setattr(SqliteCache, "holds_none", seen_empty)
    route = router.get(f"{BASE}/once").respond(200, json={"v": 1})
    client = stack(hot_entries=0)
    client.get(f"{BASE}/once")
    assert len(looked) == 1
    refreshed = client.get(f"{BASE}/once", headers={"cache-control": "no-cache"})
    assert info(refreshed).cache != "hit"
    assert route.call_count == 2
    with sqlite3.connect(tmp_path / "state" / "cache.db") as connection:
        (shown,) = connection.execute(
            "SELECT COUNT(*) FROM entries WHERE expires_at IS NULL OR expires_at > 0"
        ).fetchone()
    assert shown == 1
