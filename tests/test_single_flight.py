"""One upstream call per resource, however many threads or tasks ask at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import anyio
import httpx
import pytest
import respx

import quotaflow
from quotaflow import _flight

from .conftest import BASE, api_profile, info

URL = f"{BASE}/odds"
N = 20


@pytest.fixture
def joined(monkeypatch) -> threading.Semaphore:
    """Released once per request that reached the single-flight gate."""
    arrived = threading.Semaphore(0)
    original = _flight.SingleFlight.join

    def spy(self: _flight.SingleFlight, call: Any, **kwargs: Any) -> Any:
        try:
            return original(self, call, **kwargs)
        finally:
            arrived.release()

    monkeypatch.setattr(_flight.SingleFlight, "join", spy)
    return arrived


def held_upstream(router: respx.Router, answer: Callable[[], httpx.Response]):
    """An upstream that answers only once the test opens the gate."""
    gate = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        assert gate.wait(10), "the test never opened the gate"
        return answer()

    route = router.get(url__startswith=URL).mock(side_effect=handler)
    return route, gate


def settings(tmp_path, router, clock, **changes):
    values = {
        "profiles": [api_profile()],
        "plugins": False,
        "state_dir": tmp_path / "state",
        "transport": httpx.MockTransport(router.handler),
        "clock": clock,
    }
    values.update(changes)
    return values


def wait_for(semaphore: threading.Semaphore, count: int) -> None:
    for _ in range(count):
        assert semaphore.acquire(timeout=10)


def test_threads_share_one_upstream_call(tmp_path, router, clock, joined) -> None:
    """20 threads, one resource, not cached yet: one upstream call, 19 hits."""
    route, gate = held_upstream(router, lambda: httpx.Response(200, json={"v": 1}))
    with (
        quotaflow.make_client(**settings(tmp_path, router, clock)) as client,
        ThreadPoolExecutor(N) as pool,
    ):
        futures = [pool.submit(client.get, URL) for _ in range(N)]
        wait_for(joined, N)
        gate.set()
        responses = [future.result() for future in futures]

    assert route.call_count == 1
    assert sorted(info(r).cache for r in responses) == ["hit"] * (N - 1) + ["miss"]
    assert {r.json()["v"] for r in responses} == {1}
    assert sum(info(r).cost for r in responses) == 1


def test_tasks_share_one_upstream_call(tmp_path, router, clock, joined) -> None:
    """The same with 20 asyncio tasks on the async client."""
    responses: list[httpx.Response] = []

    async def main() -> None:
        gate = anyio.Event()

        async def handler(request: httpx.Request) -> httpx.Response:
            await gate.wait()
            return httpx.Response(200, json={"v": 1})

        route.mock(side_effect=handler)
        transport = httpx.MockTransport(router.async_handler)
        async with quotaflow.make_async_client(
            **settings(tmp_path, router, clock, transport=transport)
        ) as client:

            async def one() -> None:
                responses.append(await client.get(URL))

            async with anyio.create_task_group() as tasks:
                for _ in range(N):
                    tasks.start_soon(one)
                await anyio.to_thread.run_sync(wait_for, joined, N)
                gate.set()

    route = router.get(url__startswith=URL)
    anyio.run(main)

    assert route.call_count == 1
    assert sorted(info(r).cache for r in responses) == ["hit"] * (N - 1) + ["miss"]


def test_different_resources_do_not_wait_for_each_other(tmp_path, router, clock) -> None:
    """A slow fetch of one key never holds up another key."""
    slow_gate = threading.Event()

    def slow(request: httpx.Request) -> httpx.Response:
        assert slow_gate.wait(10)
        return httpx.Response(200, json={"slow": True})

    router.get(f"{BASE}/slow").mock(side_effect=slow)
    fast = router.get(f"{BASE}/fast").respond(200, json={"fast": True})
    with (
        quotaflow.make_client(**settings(tmp_path, router, clock)) as client,
        ThreadPoolExecutor(2) as pool,
    ):
        slow_future = pool.submit(client.get, f"{BASE}/slow")
        fast_response = pool.submit(client.get, f"{BASE}/fast").result(timeout=10)
        assert not slow_future.done()
        slow_gate.set()
        slow_future.result()

    assert fast_response.json() == {"fast": True}
    assert fast.call_count == 1


def test_upstream_error_reaches_every_waiter(tmp_path, router, clock, joined) -> None:
    """The leader's connect error is each follower's error too: still one call."""

    def refuse() -> httpx.Response:
        raise httpx.ConnectError("down")

    route, gate = held_upstream(router, refuse)
    with (
        quotaflow.make_client(**settings(tmp_path, router, clock)) as client,
        ThreadPoolExecutor(5) as pool,
    ):
        futures = [pool.submit(client.get, URL) for _ in range(5)]
        wait_for(joined, 5)
        gate.set()
        errors = [future.exception(timeout=10) for future in futures]

    assert route.call_count == 1
    assert all(isinstance(error, httpx.ConnectError) for error in errors)


def test_waiters_fall_back_to_stale_on_error(tmp_path, router, clock, traveller, joined) -> None:
    """With a stored answer, every waiter gets it stale when the shared fetch fails."""
    route = router.get(url__startswith=URL).respond(200, json={"v": 1})
    with quotaflow.make_client(**settings(tmp_path, router, clock)) as client:
        client.get(URL)
        traveller.shift(61)
        wait_for(joined, 1)
        _, gate = held_upstream(router, lambda: httpx.Response(503))
        with ThreadPoolExecutor(5) as pool:
            futures = [pool.submit(client.get, URL) for _ in range(5)]
            wait_for(joined, 5)
            gate.set()
            responses = [future.result(timeout=10) for future in futures]

    assert route.call_count == 2  # the first fetch, then one shared failing call
    assert [info(r).stale_reason for r in responses] == ["status_503"] * 5
    assert {r.json()["v"] for r in responses} == {1}


def test_a_waiter_keeps_its_own_timeout(tmp_path, router, clock, joined) -> None:
    """A follower whose (pool) timeout runs out stops waiting and fetches for itself, as
    it would without quotaflow: two upstream calls, two answers, no error."""
    gate, upstream = threading.Event(), threading.Semaphore(0)

    def handler(request: httpx.Request) -> httpx.Response:
        upstream.release()
        assert gate.wait(10), "the test never opened the gate"
        return httpx.Response(200, json={})

    route = router.get(url__startswith=URL).mock(side_effect=handler)
    with (
        quotaflow.make_client(**settings(tmp_path, router, clock)) as client,
        ThreadPoolExecutor(2) as pool,
    ):
        leader = pool.submit(client.get, URL)
        wait_for(joined, 1)
        follower = pool.submit(client.get, URL, timeout=0.05)
        wait_for(joined, 1)
        wait_for(upstream, 2)  # the follower went upstream while the leader still waits
        gate.set()
        answers = [leader.result(timeout=10), follower.result(timeout=10)]

    assert [a.status_code for a in answers] == [200, 200]
    assert route.call_count == 2


PLAIN = "https://plain.example/feed"  # a host no profile reads bodies of


def open_stream(client, url: str) -> httpx.Response:
    """A streamed GET, sent and left unread (sync or async client)."""
    request = client.client.build_request("GET", url)
    if client.mode == "sync":
        return client.client.send(request, stream=True)
    return client._portal.call(partial(client.client.send, request, stream=True))


def close_stream(client, response: httpx.Response) -> None:
    if client.mode == "sync":
        response.close()
    else:
        client._portal.call(response.aclose)


def test_a_leader_that_never_reads_its_stream_holds_nobody_up(stack, router) -> None:
    """A streamed GET left open (never read) must not block identical GETs: they fetch
    for themselves once the leader's answer has been streaming a while."""
    route = router.get(PLAIN).respond(200, json={"v": 1}, headers={"cache-control": "max-age=60"})
    client = stack()
    left_open = open_stream(client, PLAIN)

    second = client.get(PLAIN)

    assert second.json() == {"v": 1}
    assert route.call_count == 2
    close_stream(client, left_open)


def test_event_streams_never_make_followers_wait(stack, router) -> None:
    """Nothing will be stored: the leader lets its followers go at once."""
    route = router.get(PLAIN).respond(
        200, text="data: x\n\n", headers={"content-type": "text/event-stream"}
    )
    client = stack()
    feed = open_stream(client, PLAIN)

    second = client.get(PLAIN)

    assert second.text == "data: x\n\n"
    assert route.call_count == 2
    close_stream(client, feed)


@pytest.mark.anyio
async def test_a_cancelled_leader_still_lets_its_followers_go(tmp_path) -> None:
    """A streamed GET cancelled mid-body (anyio.move_on_after) lands its flight: the
    single-flight gate is left empty, and the next GET is answered."""
    import anyio

    from quotaflow._plan import _PARTS

    class Slow(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[no-untyped-def]
            yield b"first"
            await anyio.sleep_forever()
            yield b"never"

    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, stream=Slow(), headers={"cache-control": "max-age=60"})
    )
    async with quotaflow.make_async_client(
        plugins=False, config=False, state_dir=tmp_path, transport=transport
    ) as client:
        with anyio.move_on_after(0.2):
            async with client.stream("GET", "https://slow.example/x") as response:
                async for _ in response.aiter_raw():
                    pass
        assert _PARTS[client].flights._flights == {}
