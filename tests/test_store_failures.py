"""A stored answer's rows when a write fails (``_hishel_store``): never a body with a
chunk missing (review of the one-transaction store)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest
import respx

from quotaflow._state import _hishel_store

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
