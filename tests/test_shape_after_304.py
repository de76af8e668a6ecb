"""A revalidated answer's shape (the warm read's row beside hishel's entry) never outlives
what the origin's 304 said: if it cannot be rewritten, the warm read does without it."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import respx
import time_machine

from quotaflow._state import _hishel

from .conftest import Harness, info

URL = "https://example.org/things"


def test_a_304_that_shortens_freshness_is_honoured_when_the_shape_cannot_be_rewritten(
    stack: Callable[..., Harness],
    router: respx.Router,
    traveller: time_machine.Traveller,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = iter(
        [
            httpx.Response(200, text="v", headers={"cache-control": "max-age=600", "etag": '"1"'}),
            httpx.Response(304, headers={"cache-control": "max-age=10", "etag": '"1"'}),
            httpx.Response(200, text="w", headers={"cache-control": "max-age=600", "etag": '"2"'}),
        ]
    )
    route = router.get(URL).mock(side_effect=lambda request: next(answers))
    client = stack(hot_entries=0)
    client.get(URL)
    keep = _hishel.SqliteCache._write

    def busy(self: _hishel.SqliteCache, sql: str, parameters: tuple[object, ...]) -> None:
        if sql == _hishel.KEEP_SHAPE:
            return None  # as a busy file leaves it: logged, not written
        return keep(self, sql, parameters)

    monkeypatch.setattr(_hishel.SqliteCache, "_write", busy)
    revalidated = client.get(URL, headers={"cache-control": "no-cache"})
    traveller.shift(60)  # past the 304's 10 s, well within the first answer's 600 s
    later = client.get(URL)

    assert info(revalidated).cache == "revalidated"
    assert route.call_count == 3
    assert (later.text, info(later).cache) == ("w", "miss")
