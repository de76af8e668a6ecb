"""Waiting requests are released in priority order, FIFO within a level, with aging."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import httpx
import pytest
import respx

import quotaflow
from quotaflow import Priority, Rate
from quotaflow._state._waitroom import AGING, Queue

from .conftest import BASE, api_profile

# One token per 10 s, and everyone (LOW too) may wait a minute.
PROFILE = api_profile(
    rates=(Rate(1, per=10.0, burst=1),),
    quota=None,
    max_wait=dict.fromkeys(Priority, 60),
)
ARRIVALS = [
    ("b", "normal"),
    ("c", "low"),
    ("d", "high"),
    ("e", "critical"),
    ("f", "normal"),
]
RELEASED = ["a", "e", "d", "b", "f", "c"]


def test_queue_orders_by_priority_then_arrival() -> None:
    """CRITICAL before HIGH before NORMAL before LOW; first come first within one."""
    queue = Queue()
    waiters = {name: queue.enter(Priority(level), now=0.0) for name, level in ARRIVALS}
    order = []
    while (head := queue.head(0.0)) is not None:
        order.append(next(name for name, w in waiters.items() if w is head))
        queue.leave(head)

    assert order == RELEASED[1:]


def test_aging_lets_a_long_wait_overtake() -> None:
    """A LOW request that has waited 3 x AGING counts as CRITICAL and was first."""
    queue = Queue()
    low = queue.enter(Priority.LOW, now=0.0)
    critical = queue.enter(Priority.CRITICAL, now=3 * AGING - 1)

    assert queue.head(3 * AGING - 1) is critical
    assert queue.head(3 * AGING) is low


@pytest.fixture
def entered(monkeypatch) -> threading.Semaphore:
    """Released each time a request joins a wait queue."""
    arrived = threading.Semaphore(0)
    original = Queue.enter

    def spy(self: Queue, priority: Priority, now: float) -> Any:
        try:
            return original(self, priority, now)
        finally:
            arrived.release()

    monkeypatch.setattr(Queue, "enter", spy)
    return arrived


def recorded(router: respx.Router) -> list[str]:
    order: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        order.append(request.url.path.rsplit("/", 1)[-1])
        return httpx.Response(200, json={})

    router.get(url__startswith=f"{BASE}/items/").mock(side_effect=answer)
    return order


def test_threads_are_released_in_priority_order(tmp_path, router, traveller, entered) -> None:
    """With the bucket empty, five waiting threads go in priority order."""
    order = recorded(router)
    opened = threading.Event()

    def sleep(seconds: float) -> None:
        # Sleepers overlap as in real time: each wakes at its own deadline.
        until = time.time() + seconds
        assert opened.wait(10)
        if time.time() < until:
            traveller.move_to(until)

    clock = quotaflow.Clock(sleep=sleep)
    with quotaflow.make_client(
        profiles=[PROFILE],
        plugins=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
        clock=clock,
    ) as client:
        client.get(f"{BASE}/items/a")  # takes the only token
        threads = []
        for name, level in ARRIVALS:
            thread = threading.Thread(
                target=client.get,
                args=(f"{BASE}/items/{name}",),
                kwargs={"extensions": {"priority": level}},
            )
            thread.start()
            assert entered.acquire(timeout=10)
            threads.append(thread)
        opened.set()
        for thread in threads:
            thread.join(10)

    assert order == RELEASED


def test_tasks_are_released_in_priority_order(tmp_path, router, traveller, entered) -> None:
    """The same for asyncio tasks on the async client."""
    order = recorded(router)

    async def main() -> None:
        opened = anyio.Event()

        async def asleep(seconds: float) -> None:
            until = time.time() + seconds
            await opened.wait()
            if time.time() < until:
                traveller.move_to(until)

        clock = quotaflow.Clock(asleep=asleep)
        async with quotaflow.make_async_client(
            profiles=[PROFILE],
            plugins=False,
            state_dir=tmp_path,
            transport=httpx.MockTransport(router.handler),
            clock=clock,
        ) as client:
            await client.get(f"{BASE}/items/a")
            async with anyio.create_task_group() as tasks:
                for name, level in ARRIVALS:
                    tasks.start_soon(
                        lambda n=name, p=level: client.get(
                            f"{BASE}/items/{n}", extensions={"priority": p}
                        )
                    )
                    await anyio.to_thread.run_sync(entered.acquire, True, 10)
                opened.set()

    anyio.run(main)

    assert order == RELEASED


def test_a_queued_request_gives_up_after_its_max_wait(tmp_path, router, traveller) -> None:
    """Waiting counts from joining the queue: NORMAL (5 s) is refused behind a 10 s wait."""
    recorded(router)
    clock = quotaflow.Clock(sleep=lambda seconds: traveller.shift(seconds))
    profile = api_profile(rates=(Rate(1, per=10.0, burst=1),), quota=None)
    with quotaflow.make_client(
        profiles=[profile],
        plugins=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
        clock=clock,
    ) as client:
        client.get(f"{BASE}/items/a")
        with pytest.raises(quotaflow.RateLimited) as refused:
            client.get(f"{BASE}/items/b")

    assert refused.value.retry_after == pytest.approx(10.001)  # +1 ms: see test_ratelimit
