"""A fresh answer read from Redis (``hot_entries=0``, so the warm tier answers): one
``GET`` of the key's hit record, kept true by every change to the key's entries (a
newer answer, a removal, a revalidation, several answers varying). Against a real Redis
at 127.0.0.1:6379, each test on a prefix of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import hishel
import pytest
import redis
import redis.asyncio.connection
import redis.connection
import respx
import time_machine

import quotaflow
from quotaflow._state._redis_client import GuardedRedis, guarded
from quotaflow._state._redis_guard import Guard
from quotaflow._state._sync_redis_storage import GuardedRedisStorage

from .conftest import BASE, Harness, api_profile, info
from .stub_server import REDIS_URL

URL = f"{BASE}/odds"


@pytest.fixture
def sent(prefix: str, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every command sent to Redis under the test's prefix, as packed."""
    found: list[bytes] = []
    sync_send = redis.connection.AbstractConnection.send_packed_command
    async_send = redis.asyncio.connection.AbstractConnection.send_packed_command

    def see(command: object) -> None:
        if isinstance(command, (bytes, str)):
            data = command.encode() if isinstance(command, str) else command
        else:
            data = b"".join(bytes(chunk) for chunk in command)  # type: ignore[attr-defined]
        if prefix.encode() in data:
            found.append(data)

    def send(self, command, check_health=True):  # type: ignore[no-untyped-def]
        see(command)
        return sync_send(self, command, check_health)

    async def asend(self, command, check_health=True):  # type: ignore[no-untyped-def]
        see(command)
        return await async_send(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", send)
    monkeypatch.setattr(redis.asyncio.connection.AbstractConnection, "send_packed_command", asend)
    return found


def settings(prefix: str) -> dict[str, object]:
    return {"redis_url": REDIS_URL, "redis_prefix": prefix, "hot_entries": 0}


def cache_commands(sent: list[bytes]) -> list[bytes]:
    return [data for data in sent if b":cache:" in data]


def test_a_fresh_hit_is_one_get(
    stack: Callable[..., Harness], router: respx.Router, prefix: str, sent: list[bytes]
) -> None:
    """Stored by one client, read by another (nothing in memory): one GET, the same
    body and headers, from storage, its age counted from the stored Date."""
    router.get(URL).respond(200, json={"v": 1}, headers={"etag": '"a"', "x-kept": "yes"})
    first = stack(**settings(prefix))
    stored = first.get(URL)
    second = stack(**settings(prefix))
    sent.clear()

    response = second.get(URL)

    assert [data.split(b"\r\n")[2] for data in cache_commands(sent)] == [b"GET"]
    assert response.json() == {"v": 1}
    assert info(response).cache is quotaflow.CacheStatus.HIT
    assert info(response).tier == "storage"
    for name in ("etag", "x-kept", "date", "cache-control", "content-type"):
        assert response.headers[name] == stored.headers[name]
    assert response.headers["age"] == "0"
    assert response.headers["content-length"] == str(len(response.content))


def test_a_newer_answer_replaces_the_record(
    stack: Callable[..., Harness],
    router: respx.Router,
    prefix: str,
    traveller: time_machine.Traveller,
) -> None:
    """Past its freshness, the answer is fetched again: hits then serve the new one."""
    route = router.get(URL)
    route.side_effect = [
        respx.MockResponse(200, json={"v": 1}),
        respx.MockResponse(200, json={"v": 2}),
    ]
    client = stack(**settings(prefix))
    assert client.get(URL).json() == {"v": 1}
    traveller.shift(61)  # the profile keeps answers fresh 60 s

    assert client.get(URL).json() == {"v": 2}
    response = stack(**settings(prefix)).get(URL)

    assert response.json() == {"v": 2}
    assert info(response).cache is quotaflow.CacheStatus.HIT
    assert route.call_count == 2


def test_a_removed_answer_is_not_served(
    stack: Callable[..., Harness], router: respx.Router, prefix: str, raw: redis.Redis
) -> None:
    """An unsafe request invalidates the stored answer (RFC 9111 §4.4): its record
    goes with it, and the next GET goes upstream."""
    route = router.get(URL).respond(200, json={"v": 1})
    router.post(URL).respond(201, json={"made": 1})
    client = stack(**settings(prefix))
    client.get(URL)
    assert list(raw.scan_iter(match=f"{prefix}:cache:hit:*"))

    client.request("POST", URL, json={"x": 1})

    assert not list(raw.scan_iter(match=f"{prefix}:cache:hit:*"))
    response = stack(**settings(prefix)).get(URL)
    assert info(response).cache is quotaflow.CacheStatus.MISS
    assert route.call_count == 2


def test_a_revalidated_answer_keeps_its_record(
    stack: Callable[..., Harness],
    router: respx.Router,
    prefix: str,
    sent: list[bytes],
    traveller: time_machine.Traveller,
) -> None:
    """A stale answer revalidated with a 304 is fresh again from the 304's headers:
    hits read it with one GET, the renewed freshness with them."""
    route = router.get(URL)
    fresh = {"etag": '"a"', "cache-control": "max-age=60"}  # the origin's own freshness
    route.side_effect = [
        respx.MockResponse(200, json={"v": 1}, headers=fresh),
        respx.MockResponse(304, headers=fresh),
    ]
    origin = {**settings(prefix), "profiles": [api_profile(freshness=None, default_ttl=None)]}
    client = stack(**origin)
    client.get(URL)
    traveller.shift(61)
    revalidated = client.get(URL)
    assert revalidated.json() == {"v": 1}
    assert info(revalidated).cache is quotaflow.CacheStatus.REVALIDATED
    traveller.shift(30)  # stale by the first answer's Date, fresh by the 304's
    sent.clear()

    response = stack(**origin).get(URL)

    assert info(response).cache is quotaflow.CacheStatus.HIT
    assert response.json() == {"v": 1}
    assert response.headers["age"] == "30"
    assert [data.split(b"\r\n")[2] for data in cache_commands(sent)] == [b"GET"]
    assert route.call_count == 2


def test_answers_that_vary_keep_no_record(
    stack: Callable[..., Harness], router: respx.Router, prefix: str, raw: redis.Redis
) -> None:
    """An answer varying by a request header is never served without hishel's
    judgement: no record, and each variant is served to its own requests."""
    router.get(URL).mock(
        side_effect=lambda request: respx.MockResponse(
            200,
            json={"lang": request.headers["accept-language"]},
            headers={"vary": "accept-language"},
        )
    )
    client = stack(**settings(prefix))
    client.get(URL, headers={"accept-language": "en"})
    client.get(URL, headers={"accept-language": "fr"})

    assert not list(raw.scan_iter(match=f"{prefix}:cache:hit:*"))
    other = stack(**settings(prefix))
    for lang in ("en", "fr"):
        response = other.get(URL, headers={"accept-language": lang})
        assert response.json() == {"lang": lang}
        assert info(response).cache is quotaflow.CacheStatus.HIT


def test_hishel_and_quotaflow_read_each_others_entries(prefix: str, tmp_path: Path) -> None:
    """The scripts keep hishel's RedisStorage layout (``_hishel.CHECKED``): an entry one
    stores, the other reads, body and all; one removed by quotaflow is gone for hishel.
    A hishel release that changes its layout fails here, not in production."""
    client = guarded(GuardedRedis, REDIS_URL, Guard(REDIS_URL, "open", tmp_path))
    ours = GuardedRedisStorage(client, key_prefix=f"{prefix}:cache", default_ttl=60)
    theirs = hishel.RedisStorage(redis.Redis.from_url(REDIS_URL), key_prefix=f"{prefix}:cache")
    request = hishel.Request(method="GET", url=URL)
    headers = hishel.Headers({"content-length": "3", "cache-control": "max-age=60"})

    def store(storage: hishel.RedisStorage, key: str, body: bytes) -> None:
        response = hishel.Response(status_code=200, headers=headers, stream=iter([body]))
        stream = storage.create_entry(request, response, key).response.stream
        assert b"".join(cast("Iterator[bytes]", stream)) == body

    def bodies(storage: hishel.RedisStorage, key: str) -> list[bytes]:
        entries = storage.get_entries(key)
        return [b"".join(cast("Iterator[bytes]", e.response.stream)) for e in entries]

    try:
        store(ours, "by-quotaflow", b"abc")
        store(theirs, "by-hishel", b"xyz")

        assert bodies(theirs, "by-quotaflow") == [b"abc"]
        assert bodies(ours, "by-hishel") == [b"xyz"]
        assert [e.request.url for e in ours.get_entries("by-quotaflow")] == [URL]
        ours.remove_entry(ours.get_entries("by-quotaflow")[0].id)
        assert bodies(theirs, "by-quotaflow") == []
    finally:
        ours.close()
        theirs.close()
