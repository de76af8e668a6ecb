"""Clients on one state share the API's 429 pause and the circuit breaker: one state
directory (SQLite), or one Redis prefix (a real Redis at 127.0.0.1:6379, keys under a
prefix of the test's own, deleted after; skipped without Redis, failed on CI).

Each client stands for a process: it keeps nothing in memory that another sees.
Multi-process runs against a real HTTP server are in ``test_multiprocess.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import time_machine

import quotaflow
from quotaflow import events
from tests.conftest import BASE, Harness, api_profile, held_for_30s, info
from tests.stub_server import REDIS_URL, redis_prefix

Settings = Callable[[int], dict[str, Any]]


@pytest.fixture(params=["sqlite", "redis"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """``shared(n)``: the make_client settings of client ``n``, all on one state."""
    if request.param == "sqlite":
        yield lambda n: {"state_dir": tmp_path / "state"}
        return
    with redis_prefix() as prefix:
        # Each client on a state_dir of its own: Redis is what they share.
        yield lambda n: {
            "state_dir": tmp_path / f"state-{n}",
            "redis_url": REDIS_URL,
            "redis_prefix": prefix,
        }


@pytest.fixture
def sync_clients(
    shared: Settings, router: respx.Router, clock: quotaflow.Clock
) -> Iterator[Callable[..., list[httpx.Client]]]:
    """``sync_clients(n, **settings)``: n sync clients on the shared state, for tests
    where one client calls while another's request is on its way (inside the router)."""
    opened: list[httpx.Client] = []

    def open_clients(n: int, **settings: Any) -> list[httpx.Client]:
        found = [
            quotaflow.make_client(
                **{
                    "profiles": [api_profile()],
                    "plugins": False,
                    "transport": httpx.MockTransport(router.handler),
                    "clock": clock,
                    **shared(k),
                    **settings,
                }
            )
            for k in range(n)
        ]
        opened.extend(found)
        return found

    yield open_clients
    for client in opened:
        client.close()


def circuit(seen: list[events.Event]) -> list[str]:
    return [event.state for event in seen if isinstance(event, events.CircuitChanged)]


def test_a_429_pauses_every_client_on_the_state(
    stack: Callable[..., Harness],
    router: respx.Router,
    shared: Settings,
    traveller: time_machine.Traveller,
    sleeps: list[float],
) -> None:
    """The first client gets 429 with Retry-After: 30. Until then the second sends
    nothing: LOW is answered stale (or refused), NORMAL (max wait 5 s) is refused,
    CRITICAL (max wait 30 s) waits exactly until T and goes then."""
    warm = router.get(f"{BASE}/warm").respond(200, json={"v": 1})
    router.get(f"{BASE}/odds").respond(429, headers={"retry-after": "30"})
    sent_at: list[float] = []

    def fresh_answer(request: httpx.Request) -> httpx.Response:
        sent_at.append(time.time())
        return httpx.Response(200, json={"v": 2})

    fresh = router.get(f"{BASE}/fresh").mock(side_effect=fresh_answer)
    first, second = stack(**shared(0)), stack(**shared(1))
    first.get(f"{BASE}/warm")
    traveller.shift(61)  # the stored answer is stale now, within max_stale
    until = time.time() + 30

    assert first.get(f"{BASE}/odds").status_code == 429

    response = held_for_30s(second, warm, fresh, sleeps)

    assert response.json() == {"v": 2}
    assert sent_at == [until]
    # Past T nobody waits, the first client included.
    assert first.get(f"{BASE}/fresh?again=1").status_code == 200
    assert sleeps == [30.0]


def test_a_pause_only_moves_later(
    sync_clients: Callable[..., list[httpx.Client]],
    router: respx.Router,
    traveller: time_machine.Traveller,
) -> None:
    """A 429 asking for 2 s, answered to a request already on its way when another
    asked for 30 s, does not shorten the pause."""
    first, second, third = sync_clients(3)

    def short(request: httpx.Request) -> httpx.Response:
        first.get(f"{BASE}/long")  # meanwhile: 429, hold off for 30 s
        return httpx.Response(429, headers={"retry-after": "2"})

    router.get(f"{BASE}/long").respond(429, headers={"retry-after": "30"})
    router.get(f"{BASE}/short").mock(side_effect=short)
    fresh = router.get(f"{BASE}/fresh").respond(200, json={})
    assert second.get(f"{BASE}/short").status_code == 429
    traveller.shift(5)

    with pytest.raises(quotaflow.RateLimited) as refused:
        third.get(f"{BASE}/fresh", extensions={"priority": "high"})

    assert refused.value.retry_after == pytest.approx(25)
    assert fresh.call_count == 0


def test_an_open_circuit_stops_every_client_and_one_probe_closes_it(
    stack: Callable[..., Harness],
    router: respx.Router,
    shared: Settings,
    traveller: time_machine.Traveller,
) -> None:
    """Three failures in a row between two clients open the circuit for both; the event
    fires where the third failure happened. After the cool-down one probe closes it;
    the event fires in the prober only."""
    route = router.get(url__startswith=BASE).mock(side_effect=httpx.ConnectError("down"))
    profile = api_profile(breaker_threshold=3, breaker_cooldown=30)
    seen: list[list[events.Event]] = [[], []]
    first, second = (
        stack(**shared(n), profiles=[profile], subscribers=[seen[n].append]) for n in (0, 1)
    )
    for client, n in ((first, 0), (second, 1), (first, 2)):
        with pytest.raises(httpx.ConnectError):
            client.get(f"{BASE}/{n}")

    with pytest.raises(quotaflow.CircuitOpen) as refused:
        second.get(f"{BASE}/next")

    assert route.call_count == 3
    assert refused.value.retry_after == pytest.approx(30)
    assert (circuit(seen[0]), circuit(seen[1])) == (["open"], [])
    with pytest.raises(quotaflow.CircuitOpen):
        first.get(f"{BASE}/next")

    traveller.shift(30)
    route.mock(side_effect=None, return_value=httpx.Response(200, json={}))
    assert second.get(f"{BASE}/probe").status_code == 200
    assert first.get(f"{BASE}/after").status_code == 200

    assert route.call_count == 5
    assert (circuit(seen[0]), circuit(seen[1])) == (["open"], ["closed"])


def test_an_open_circuit_answers_stale_in_every_client(
    stack: Callable[..., Harness],
    router: respx.Router,
    shared: Settings,
    traveller: time_machine.Traveller,
) -> None:
    """The second client never failed itself; a stored answer still comes back at once,
    stale, with the reason."""
    route = router.get(url__startswith=BASE).respond(200, json={"v": 1})
    profile = api_profile(breaker_threshold=2)
    first, second = (stack(**shared(n), profiles=[profile]) for n in (0, 1))
    first.get(f"{BASE}/odds")
    traveller.shift(61)
    route.respond(500)
    first.get(f"{BASE}/a")
    first.get(f"{BASE}/b")

    response = second.get(f"{BASE}/odds")

    assert info(response).stale_reason == "circuit_open"
    assert response.json() == {"v": 1}
    assert route.call_count == 3


def test_one_probe_at_a_time_across_clients(
    sync_clients: Callable[..., list[httpx.Client]],
    router: respx.Router,
    traveller: time_machine.Traveller,
) -> None:
    """While the first client's probe is out, the second one's request is refused at
    once; once the probe closed the circuit, the second client goes upstream again."""
    profile = api_profile(breaker_threshold=1, breaker_cooldown=10)
    first, second = sync_clients(2, profiles=[profile])
    during: list[BaseException] = []

    def probe(request: httpx.Request) -> httpx.Response:
        try:  # the second client asks while the probe is out
            second.get(f"{BASE}/meanwhile")
        except quotaflow.CircuitOpen as exc:
            during.append(exc)
        return httpx.Response(200, json={})

    router.get(f"{BASE}/down").mock(side_effect=httpx.ConnectError("down"))
    router.get(f"{BASE}/probe").mock(side_effect=probe)
    later = router.get(f"{BASE}/later").respond(200, json={})
    with pytest.raises(httpx.ConnectError):
        first.get(f"{BASE}/down")
    traveller.shift(10)

    assert first.get(f"{BASE}/probe").status_code == 200
    assert len(during) == 1
    assert second.get(f"{BASE}/later").status_code == 200
    assert later.call_count == 1
