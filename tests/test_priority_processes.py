"""Priority across processes: two clients on one state (each its own backend handle,
as two processes have) admit a waiting CRITICAL request of one before a LOW request
of the other (``_board``), on SQLite and on Redis."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
import respx

import quotaflow
from quotaflow import Priority, Rate
from quotaflow._state._board import Board

from .conftest import BASE, api_profile
from .stub_server import REDIS_URL

# One token per 10 s; everyone may wait a minute.
PROFILE = api_profile(
    rates=(Rate(1, per=10.0, burst=1),),
    quota=None,
    max_wait=dict.fromkeys(Priority, 60),
)


@pytest.fixture
def boarded(monkeypatch: pytest.MonkeyPatch) -> threading.Semaphore:
    """Released each time a waiter is put on a shared board."""
    arrived = threading.Semaphore(0)
    original = Board.enter

    def spy(self: Board, rank: int, until: float, now: float) -> str:
        try:
            return original(self, rank, until, now)
        finally:
            arrived.release()

    monkeypatch.setattr(Board, "enter", spy)
    return arrived


@pytest.mark.parametrize("shared", ["sqlite", "redis"])
def test_critical_of_one_process_goes_before_low_of_another(
    shared: str,
    tmp_path: Path,
    router: respx.Router,
    traveller: Any,
    boarded: threading.Semaphore,
    request: pytest.FixtureRequest,
) -> None:
    """Client one holds the only token and has a CRITICAL request waiting for the next;
    client two's LOW request, whose own clock would wake it first, defers to it: the
    CRITICAL request is sent first, then the LOW one."""
    order: list[str] = []
    critical_sent = threading.Event()

    def answer(req: httpx.Request) -> httpx.Response:
        name = req.url.path.rsplit("/", 1)[-1]
        order.append(name)
        if name == "critical":
            critical_sent.set()
        return httpx.Response(200, json={})

    router.get(url__startswith=f"{BASE}/items/").mock(side_effect=answer)

    def move_to(until: float) -> None:
        if time.time() < until:
            traveller.move_to(until)

    def patient(seconds: float) -> None:
        # One's sleeper lets the other run first (up to a second of real time).
        until = time.time() + seconds
        critical_sent.wait(1.0)
        move_to(until)

    def eager(seconds: float) -> None:
        until = time.time() + seconds
        critical_sent.wait(0.02)
        move_to(until)

    if shared == "redis":
        prefix = request.getfixturevalue("prefix")
        where: list[dict[str, Any]] = [
            {"state_dir": tmp_path / n, "redis_url": REDIS_URL, "redis_prefix": prefix}
            for n in ("one", "two")
        ]
    else:
        where = [{"state_dir": tmp_path}, {"state_dir": tmp_path}]
    common = {
        "profiles": [PROFILE],
        "plugins": False,
        "transport": httpx.MockTransport(router.handler),
    }
    one = quotaflow.make_client(**common, **where[0], clock=quotaflow.Clock(sleep=patient))
    two = quotaflow.make_client(**common, **where[1], clock=quotaflow.Clock(sleep=eager))
    with one, two:
        one.get(f"{BASE}/items/first")  # takes the only token
        critical = threading.Thread(
            target=one.get,
            args=(f"{BASE}/items/critical",),
            kwargs={"extensions": {"priority": "critical"}},
        )
        critical.start()
        assert boarded.acquire(timeout=10)  # one's CRITICAL waits, on the board
        low = two.get(f"{BASE}/items/low", extensions={"priority": "low"})
        critical.join(10)

    assert low.status_code == 200
    assert order == ["first", "critical", "low"]


def test_a_deferring_request_gives_up_at_its_max_wait(
    tmp_path: Path, router: respx.Router, traveller: Any, boarded: threading.Semaphore
) -> None:
    """Deferring is bounded by the request's own deadline: a LOW request allowed to wait
    1 s, behind another process's CRITICAL one, is refused after 1 s of waiting and
    never sent."""
    order: list[str] = []
    router.get(url__startswith=f"{BASE}/items/").mock(
        side_effect=lambda req: (
            order.append(req.url.path.rsplit("/", 1)[-1]) or httpx.Response(200, json={})
        )
    )
    low_done = threading.Event()

    def patient(seconds: float) -> None:
        until = time.time() + seconds
        low_done.wait(5.0)
        if time.time() < until:
            traveller.move_to(until)

    def eager(seconds: float) -> None:
        traveller.shift(seconds)

    profile = api_profile(
        rates=(Rate(1, per=10.0, burst=1),),
        quota=None,
        max_wait={**dict.fromkeys(Priority, 60), Priority.LOW: 1},
    )
    common = {
        "profiles": [profile],
        "plugins": False,
        "state_dir": tmp_path,
        "transport": httpx.MockTransport(router.handler),
    }
    one = quotaflow.make_client(**common, clock=quotaflow.Clock(sleep=patient))
    two = quotaflow.make_client(**common, clock=quotaflow.Clock(sleep=eager))
    with one, two:
        one.get(f"{BASE}/items/first")
        critical = threading.Thread(
            target=one.get,
            args=(f"{BASE}/items/critical",),
            kwargs={"extensions": {"priority": "critical"}},
        )
        critical.start()
        assert boarded.acquire(timeout=10)
        started = time.time()
        try:
            with pytest.raises(quotaflow.RateLimited):
                two.get(f"{BASE}/items/low", extensions={"priority": "low"})
            assert time.time() - started == pytest.approx(1.0, abs=0.3)  # virtual seconds
        finally:
            low_done.set()
        critical.join(10)

    assert order == ["first", "critical"]


def test_async_clients_on_one_state_admit_critical_first(
    tmp_path: Path, router: respx.Router, traveller: Any, boarded: threading.Semaphore
) -> None:
    """The same with two async clients on one state directory (the async wait room)."""
    order: list[str] = []

    async def main() -> None:
        critical_sent = anyio.Event()

        def answer(req: httpx.Request) -> httpx.Response:
            name = req.url.path.rsplit("/", 1)[-1]
            order.append(name)
            if name == "critical":
                critical_sent.set()
            return httpx.Response(200, json={})

        router.get(url__startswith=f"{BASE}/items/").mock(side_effect=answer)

        def sleeper(patience: float) -> Any:
            async def asleep(seconds: float) -> None:
                until = time.time() + seconds
                with anyio.move_on_after(patience):
                    await critical_sent.wait()
                if time.time() < until:
                    traveller.move_to(until)

            return asleep

        common = {
            "profiles": [PROFILE],
            "plugins": False,
            "state_dir": tmp_path,
            "transport": httpx.MockTransport(router.handler),
        }
        one = quotaflow.make_async_client(**common, clock=quotaflow.Clock(asleep=sleeper(1.0)))
        two = quotaflow.make_async_client(**common, clock=quotaflow.Clock(asleep=sleeper(0.02)))
        async with one, two, anyio.create_task_group() as tasks:
            await one.get(f"{BASE}/items/first")
            tasks.start_soon(
                lambda: one.get(f"{BASE}/items/critical", extensions={"priority": "critical"})
            )
            await anyio.to_thread.run_sync(boarded.acquire, True, 10)
            low = await two.get(f"{BASE}/items/low", extensions={"priority": "low"})
            assert low.status_code == 200

    anyio.run(main)
    assert order == ["first", "critical", "low"]
