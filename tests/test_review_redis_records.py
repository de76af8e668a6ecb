"""Correctness review of the Redis hit records (issue 16): a revalidation racing an
invalidation and a newer answer must not bring the old answer back as the key's record.
Against a real Redis at 127.0.0.1:6379, on a prefix of the test's own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import hishel
import pytest

from quotaflow._policy import http_date
from quotaflow._state._redis_client import GuardedRedis, guarded
from quotaflow._state._redis_guard import Guard
from quotaflow._state._sync_redis_storage import GuardedRedisStorage

from .stub_server import REDIS_URL

URL = "https://api.test/odds"


def test_a_revalidation_never_puts_back_a_record_a_newer_answer_replaced(
    prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One process revalidates the stored answer (a 304's headers); between its read of
    the key's hit record and its write, another removes that answer (an unsafe method)
    and stores a newer one. Hits then serve the newer answer, not the old one renewed."""
    guard = Guard(REDIS_URL, "open", tmp_path)
    ours = GuardedRedisStorage(guarded(GuardedRedis, REDIS_URL, guard), key_prefix=f"{prefix}:c")
    other = GuardedRedisStorage(guarded(GuardedRedis, REDIS_URL, guard), key_prefix=f"{prefix}:c")
    request = hishel.Request(method="GET", url=URL)
    now = time.time()

    def headers(at: float) -> hishel.Headers:
        return hishel.Headers(
            {"content-length": "3", "cache-control": "max-age=60", "date": http_date(at)}
        )

    def store(storage: GuardedRedisStorage, body: bytes) -> None:
        response = hishel.Response(status_code=200, headers=headers(now), stream=iter([body]))
        stream = storage.create_entry(request, response, "k", ttl=600).response.stream
        b"".join(cast("Iterator[bytes]", stream))

    try:
        store(ours, b"old")
        (old,) = ours.get_entries("k")
        renewed = ours._renewed

        def meanwhile(*args: Any) -> Any:
            found = renewed(*args)
            other.remove_entry(old.id)  # another process: an unsafe method...
            store(other, b"new")  # ...then a newer answer
            return found

        monkeypatch.setattr(ours, "_renewed", meanwhile)
        ours.update_headers(old.id, headers(now + 1))

        hit = other.fresh("k", URL, now + 2, 1000)
        assert hit is None or hit.body == b"new"
    finally:
        ours.close()
        other.close()
