"""The system clock stepped back (issue 13, item 16): no wait grows past its stated
length, in this process or the next, and no quota period's count is wiped.

The clock is the machine's (time_machine moves ``time.time`` for the whole stack, as an
NTP step would); the monotonic clock is the Clock's own, moved by every sleep and every
``elapse`` but never by a step.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import respx
import time_machine

import quotaflow
from quotaflow import Quota, Rate
from quotaflow._state._gate import JUMP_MS, GateOp
from quotaflow._state._pyrate import InMemoryStateStore, WindowRate
from quotaflow._state._steady import Steady
from quotaflow._state._window import SlidingCap

from .conftest import BASE, Harness, api_profile, info

HOUR = 3600.0


class Clocks:
    """Wall time (the traveller) and a monotonic clock; ``sleeps``: the waits asked for."""

    def __init__(self, traveller: time_machine.Traveller) -> None:
        self.traveller = traveller
        self.monotonic = 1000.0
        self.sleeps: list[float] = []

    def elapse(self, seconds: float) -> None:
        """Real time passes: both clocks move."""
        self.monotonic += seconds
        self.traveller.shift(seconds)

    def step_back(self, seconds: float) -> None:
        """The wall clock alone goes back (no time passes)."""
        self.traveller.shift(-seconds)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.elapse(seconds)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def clock(self) -> quotaflow.Clock:
        return quotaflow.Clock(
            sleep=self.sleep,
            asleep=self.asleep,
            random=lambda: 0.5,
            monotonic=lambda: self.monotonic,
        )


@pytest.fixture
def clocks(traveller: time_machine.Traveller) -> Clocks:
    return Clocks(traveller)


Open = Callable[..., Harness]


def test_steady_time_takes_steps_back_out() -> None:
    """Steady time follows the wall clock forward and the monotonic clock across a step
    back; small reorderings (under a second) are not steps."""
    mono = [0.0]
    steady = Steady(lambda: mono[0])
    assert steady.at(100.0) == 100.0
    mono[0] = 1.0
    assert steady.at(101.0) == 101.0
    mono[0] = 3.0
    assert steady.at(101.0 - HOUR + 2.0) == pytest.approx(103.0)  # stepped back an hour
    mono[0] = 4.0
    assert steady.at(101.0 - HOUR + 3.0) == pytest.approx(104.0)
    assert steady.at(101.0 - HOUR + 2.5) == pytest.approx(103.5)  # reordered, not a step
    assert steady.offset() == pytest.approx(HOUR)


def test_the_state_moves_back_with_a_clock_that_stepped_back() -> None:
    """A check more than JUMP_MS behind the state's latest time moves every time in the
    state back by the step: what was left of the window and the pause is left still."""
    rates, store = [WindowRate(2, 1000)], InMemoryStateStore()
    t = 1_800_000_000_000
    for at in (t, t + 1):
        assert store.check(SlidingCap(), rates, at, 1).allowed
    store.check(SlidingCap(GateOp.hold(t + 2000)), rates, t + 2, 1)

    back = t + 2 - 3_600_000
    refused = store.check(SlidingCap(), rates, back, 1)
    assert refused.retry_after_ms == 2000 - 2  # the pause's own remainder, not an hour
    assert store.check(SlidingCap(), rates, back + 1998, 1).allowed
    assert store.read(SlidingCap(), rates)[0] == back + 1998  # moved once, kept

    # Within JUMP_MS it is a late reading, judged at the state's time, as before.
    late = store.check(SlidingCap(), rates, back + 1998 - JUMP_MS + 1, 1)
    assert late.allowed
    assert store.read(SlidingCap(), rates)[0] == back + 1998

    # A caller that knows how far its clock stepped back (here 3,600 s, 500 ms after the
    # latest check) has the state moved by exactly that: the 500 ms are not counted again.
    store.check(SlidingCap(GateOp.hold(back + 1998 + 2000)), rates, back + 1998, 1)
    known = back + 1998 + 500 - 3_600_000
    refused = store.check(SlidingCap(stepped=3_600_000), rates, known, 1)
    assert refused.retry_after_ms == 1500


def test_a_retry_after_pause_stays_its_length(
    stack: Open, router: respx.Router, clocks: Clocks
) -> None:
    """A 2 s Retry-After pause, then the clock steps back an hour: the next request waits
    the rest of the 2 s, in this client and in a new one on the same state."""
    router.get(f"{BASE}/busy").respond(429, headers={"retry-after": "2"})
    other = router.get(f"{BASE}/other").respond(200, json={})
    client = stack(clock=clocks.clock())
    assert client.get(f"{BASE}/busy").status_code == 429
    clocks.elapse(0.5)
    clocks.step_back(HOUR)

    response = client.get(f"{BASE}/other", extensions={"priority": "critical"})

    assert other.call_count == 1
    assert clocks.sleeps == [pytest.approx(1.5)]
    assert info(response).waited == pytest.approx(1.5)

    # A new process, whose clock read an hour back from the start.
    router.get(f"{BASE}/busy2").respond(429, headers={"retry-after": "2"})
    assert client.get(f"{BASE}/busy2", extensions={"priority": "critical"}).status_code == 429
    client.close()
    clocks.step_back(HOUR)
    again = stack(clock=clocks.clock())
    router.get(f"{BASE}/other2").respond(200, json={})
    again.get(f"{BASE}/other2", extensions={"priority": "critical"})
    assert clocks.sleeps[1:] == [pytest.approx(2.0)]


def test_a_breaker_cooldown_stays_its_length(
    stack: Open, router: respx.Router, clocks: Clocks
) -> None:
    """A 5 s cool-down, then the clock steps back an hour: 5 s later the probe goes, in
    this client and in a new one."""
    route = router.get(f"{BASE}/down").respond(503)
    profile = api_profile(breaker_threshold=1, breaker_cooldown=5.0)
    client = stack(profiles=[profile], clock=clocks.clock())
    client.get(f"{BASE}/down")
    clocks.step_back(HOUR)
    with pytest.raises(quotaflow.CircuitOpen) as refused:
        client.get(f"{BASE}/down")
    assert refused.value.retry_after == pytest.approx(5.0)

    clocks.elapse(5.0)
    route.respond(200, json={})
    assert client.get(f"{BASE}/down").status_code == 200  # the probe
    assert route.call_count == 2

    router.get(f"{BASE}/down2").respond(503)
    client.get(f"{BASE}/down2")  # open again, for 5 s
    client.close()
    clocks.step_back(HOUR)
    again = stack(profiles=[profile], clock=clocks.clock())
    with pytest.raises(quotaflow.CircuitOpen) as refused:
        again.get(f"{BASE}/elsewhere")
    assert refused.value.retry_after <= 5.0


def test_the_limiter_does_not_refuse_for_an_hour(
    stack: Open, router: respx.Router, clocks: Clocks
) -> None:
    """2 a second, the window full, the clock an hour back: requests go on at 2 a
    second, in this client and the next."""
    route = router.get(url__startswith=f"{BASE}/n").respond(200, json={})
    profile = api_profile(rates=(Rate(2, per=1.0),), freshness=lambda *_: 0)
    client = stack(profiles=[profile], clock=clocks.clock())
    for n in range(2):
        client.get(f"{BASE}/n{n}")
    clocks.step_back(HOUR)

    for n in range(2, 8):
        client.get(f"{BASE}/n{n}", extensions={"priority": "critical"})
    client.close()
    again = stack(profiles=[profile], clock=clocks.clock())
    again.get(f"{BASE}/n8", extensions={"priority": "critical"})

    assert route.call_count == 9
    assert sum(clocks.sleeps) <= 4.01  # 7 more at 2/s after a full window


def test_a_step_back_across_midnight_keeps_the_days_count(
    stack: Open, router: respx.Router, clocks: Clocks
) -> None:
    """A daily quota, 4 calls just after midnight, the clock a minute back (yesterday),
    4 more: the day's ledger counts all 8, then 1 more once midnight passes again."""
    router.get(url__startswith=f"{BASE}/d").respond(200, json={})
    profile = api_profile(quota=Quota(100, period="day"), freshness=lambda *_: 0, rates=())
    clocks.traveller.move_to(datetime(2026, 11, 30, 0, 0, 30, tzinfo=UTC))
    client = stack(profiles=[profile], clock=clocks.clock())
    for n in range(4):
        client.get(f"{BASE}/d{n}")
    clocks.step_back(60)
    for n in range(4, 8):
        last = client.get(f"{BASE}/d{n}")
    assert info(last).remaining == 92
    clocks.elapse(120)
    assert info(client.get(f"{BASE}/d8")).remaining == 91


def test_a_lease_taken_before_a_step_back_does_not_hold_for_an_hour(tmp_path: Path) -> None:
    """A single-flight lease expiring an hour and 30 s from now was taken before the
    clock went back: it has run its course."""
    from quotaflow._state._db import StateDB
    from quotaflow._state._sqlite import SqliteLeases

    db = StateDB(tmp_path / "state.db")
    leases = SqliteLeases(db)
    assert leases.acquire("k", 30.0, 10_000.0) is not None
    assert leases.held("k", 10_000.0 + 29)
    assert not leases.held("k", 10_000.0 - HOUR)
    assert leases.acquire("k", 30.0, 10_000.0 - HOUR) is not None
    db.close()


def test_redis_moves_its_state_back_as_python_does(prefix: str) -> None:
    """The Lua twin moves the state back like ``SlidingCap.step``: by the whole gap for
    a caller that knows no step, by the step for one that does; same decisions, same
    state left."""
    import redis

    from quotaflow._state._redis import _RedisWindow

    from .stub_server import REDIS_URL

    rates = [WindowRate(2, 1000), WindowRate(3, 5000, 1)]
    local, client = InMemoryStateStore(), redis.Redis.from_url(REDIS_URL)
    remote = _RedisWindow(client, key=f"{prefix}:steps")
    t = 1_800_000_000_000
    steps = [
        (SlidingCap(), t),
        (SlidingCap(GateOp.hold(t + 2000)), t + 1),
        (SlidingCap(GateOp.fail(1, 5000, 0)), t + 2),
        (SlidingCap(), t + 500 - 3_600_000),
        (SlidingCap(stepped=60_000), t + 3000 - 3_660_000),
        (SlidingCap(GateOp.take_probe(100), stepped=60_000), t + 9000 - 3_660_000),
        (SlidingCap(), t + 9500 - 3_660_000),
    ]
    try:
        for algorithm, now in steps:
            mine, theirs = (s.check(algorithm, rates, now, 1) for s in (local, remote))
            assert (theirs.failing_rate, theirs.retry_after_ms) == (
                mine.failing_rate,
                mine.retry_after_ms,
            )
            assert remote.read(SlidingCap(), rates) == local.read(SlidingCap(), rates)
    finally:
        remote.reset()
        client.close()
