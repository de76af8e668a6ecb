"""The short window: never more than ``limit`` requests in any ``per`` seconds, ``burst``
at once, whatever holds the state; and the gate kept with it (the 429 pause and the
circuit breaker), shared by every handle on the state.

Every test runs on pyrate-limiter's in-memory store, ours in a SQLite file and Redis (a
real Redis at 127.0.0.1:6379, keys under a prefix of this module's own, deleted after;
skipped without Redis, failed on CI); the Lua script is checked against the Python step.
The clock is injected: ``try_acquire(now)``.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyrate_limiter import Rate as PyrateRate
from pyrate_limiter import StateStore
from pyrate_limiter.buckets.state_bucket import InMemoryStateStore

import quotaflow
from quotaflow import Rate
from quotaflow._state._breaker import PROBE_LEASE, Breaker
from quotaflow._state._db import LocalStateError, StateDB
from quotaflow._state._gate import JUMP_MS, NO_GATE, PAUSED, GateOp, GateState, WindowDecision
from quotaflow._state._short import ShortWindow
from quotaflow._state._sqlite import SqliteWindowStore
from quotaflow._state._window import CAP, SlidingCap, grid, ttl_ms
from tests.conftest import START, api_profile
from tests.stub_server import REDIS_URL, redis_prefix

# An epoch time with a fraction of a millisecond, as real clocks give.
FRACTION = 0.0004567
T0 = START.timestamp() + 0.123 + FRACTION
# A request counts for `per` seconds and one millisecond (see _window).
TICK = 0.001

Stores = Callable[[str], StateStore]


@pytest.fixture(scope="module")
def prefix() -> Iterator[str]:
    """One Redis key prefix for the module (each test's keys are unique under it)."""
    with redis_prefix() as prefix:
        yield prefix


@pytest.fixture(params=["memory", "sqlite", "redis"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    """``stores(key)``: a handle on ``key``'s window state. Handles on one key share it:
    the same object in memory; in SQLite and Redis, successive handles take turns
    between two connections (two ``StateDB`` on one file, two clients on one Redis)."""
    if request.param == "memory":
        shared: dict[str, StateStore] = {}
        yield lambda key: shared.setdefault(key, InMemoryStateStore())
        return
    if request.param == "sqlite":
        dbs = [StateDB(tmp_path / "state.db"), StateDB(tmp_path / "state.db")]
        turns = itertools.cycle(dbs)
        yield lambda key: SqliteWindowStore(next(turns), key)
        for db in dbs:
            db.close()
        return
    from quotaflow._state._redis import redis_backend

    prefix = request.getfixturevalue("prefix")
    backends = [
        redis_backend(REDIS_URL, prefix=prefix, fail="closed", directory=tmp_path, retention=60)
        for _ in range(2)
    ]
    cycle = itertools.cycle(backends)
    yield lambda key: next(cycle).window_store(key)
    for backend in backends:
        backend.close()


def windows(stores: Stores, *rates: Rate, handles: int = 1) -> list[ShortWindow]:
    """``handles`` ShortWindows of one profile, each on its own handle of a fresh key."""
    key = f"rate:{uuid.uuid4().hex}"
    profile = api_profile(rates=rates)
    return [ShortWindow(profile, stores(key)) for _ in range(handles)]


def most_in_any_window(times: list[float], width: float) -> int:
    """Most admissions in any half-open [t, t + width) (``times`` sorted)."""
    return max((bisect.bisect_left(times, t + width) - i for i, t in enumerate(times)), default=0)


def saturate(window: ShortWindow, until: float) -> list[float]:
    """One caller asking again and again, waiting exactly as told: when it got in."""
    now, admitted = T0, []
    while now < until:
        wait = window.try_acquire(now)
        assert wait >= 0
        if wait == 0:
            admitted.append(now)
        now += wait
    return admitted


def test_after_idling_a_full_burst_then_the_exact_wait(stores: Stores) -> None:
    """30/s: 30 go at once; the 31st waits until the first leaves the window, then gets in."""
    (window,) = windows(stores, Rate(30, per=1.0))

    assert [window.try_acquire(T0) for _ in range(30)] == [0.0] * 30
    wait = window.try_acquire(T0)

    assert wait == pytest.approx(1 + TICK - FRACTION, abs=2e-6)  # to a whole millisecond
    assert window.try_acquire(T0 + wait - 0.001) > 0  # not a moment before
    assert window.try_acquire(T0 + wait) == 0
    assert [window.try_acquire(T0 + wait) for _ in range(30)] == [0.0] * 29 + [
        pytest.approx(1 + TICK, abs=2e-6)
    ]


def test_a_refused_request_spends_nothing(stores: Stores) -> None:
    """Asking while full changes nothing: the wait stays the same, and so does the count."""
    (window,) = windows(stores, Rate(2, per=1.0))
    window.try_acquire(T0)
    window.try_acquire(T0 + 0.5)

    waits = [window.try_acquire(T0 + 0.6) for _ in range(5)]

    assert waits == [pytest.approx(1 + TICK - 0.6 - FRACTION, abs=2e-6)] * 5
    assert window.available(T0 + 0.6) == 0
    assert window.available(T0 + 1.002) == 1


@pytest.mark.parametrize("burst", [30, 5, 1])
def test_saturated_the_rate_is_used_and_never_exceeded(stores: Stores, burst: int) -> None:
    """30/s for 20 simulated seconds: >= 0.95 of 30/s, <= 30 in any second, <= burst at once."""
    (window,) = windows(stores, Rate(30, per=1.0, burst=burst))

    admitted = saturate(window, until=T0 + 20)

    assert most_in_any_window(admitted, 1.0) == 30
    assert max(Counter(admitted).values()) == burst  # at once
    rate = bisect.bisect_left(admitted, admitted[-1]) / (admitted[-1] - admitted[0])
    assert rate >= 0.95 * 30


def test_a_smaller_burst_spaces_requests_at_the_rate(stores: Stores) -> None:
    """30/s with burst 5: 5 at once, then one every 1/30 s."""
    (window,) = windows(stores, Rate(30, per=1.0, burst=5))

    admitted = saturate(window, until=T0 + 0.5)

    assert admitted[:5] == [T0] * 5
    gaps = [b - a for a, b in itertools.pairwise(admitted[4:])]
    assert gaps == [pytest.approx(1 / 30, abs=0.0011)] * len(gaps)


def test_several_rates_all_hold(stores: Stores) -> None:
    """3 per 100 ms and 10 per second: the stricter one decides at each moment."""
    (window,) = windows(stores, Rate(3, per=0.1), Rate(10, per=1.0))

    admitted = saturate(window, until=T0 + 5)

    assert most_in_any_window(admitted, 0.1) == 3
    assert most_in_any_window(admitted, 1.0) == 10
    assert len(admitted) >= 0.95 * 10 * 5


def test_above_the_cap_stamps_are_coarser_and_the_log_stays_small(stores: Stores) -> None:
    """200/s saturated: never over, >= CAP/(CAP+1) of the rate, at most CAP + 2 pairs."""
    (window,) = windows(stores, Rate(200, per=1.0, burst=20))

    admitted = saturate(window, until=T0 + 3)

    assert most_in_any_window(admitted, 1.0) == 200
    rate = bisect.bisect_left(admitted, admitted[-1]) / (admitted[-1] - admitted[0])
    assert rate >= 200 * CAP / (CAP + 1)
    state = window.store.read(window.algorithm, window.rates)
    assert isinstance(state, tuple)
    assert state[2] <= CAP + 2  # pairs in the one rate's log


@st.composite
def traffic(draw: st.DrawFn) -> tuple[int, float, int, list[tuple[float, int, bool]]]:
    """(limit, per, burst, arrivals): each arrival a gap in seconds, which of two
    handles asks, and whether a refused caller comes back when told."""
    limit = draw(st.integers(1, 12))
    per = draw(st.integers(5, 1500)) / 1000
    burst = draw(st.integers(1, limit))
    # Gaps that land on the edges: together, a hair apart, just inside or past `per`.
    edges = [0.0, 0.0001, 0.0007, 0.001, per / limit, per - 0.0006, per - 0.0001, per]
    gap = st.sampled_from(edges) | st.floats(0, per)
    arrival = st.tuples(gap, st.integers(0, 1), st.booleans())
    return limit, per, burst, draw(st.lists(arrival, min_size=1, max_size=80))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(traffic())
def test_no_window_ever_holds_more_than_the_limit(
    stores: Stores, case: tuple[int, float, int, list[tuple[float, int, bool]]]
) -> None:
    """Random arrivals on two handles of one state: no [t, t + per) holds more than limit;
    with burst < limit, the token bucket's bound holds too; a caller back after its wait
    gets in."""
    limit, per, burst, arrivals = case
    handles = windows(stores, Rate(limit, per=per, burst=burst), handles=2)
    now, admitted = T0, []
    for gap, which, comes_back in arrivals:
        now += gap
        wait = handles[which].try_acquire(now)
        assert wait >= 0
        if wait > 0 and comes_back:
            now += wait
            wait = handles[which].try_acquire(now)
            assert wait == 0  # nobody else asked meanwhile
        if wait == 0:
            admitted.append(now)

    assert most_in_any_window(admitted, per) <= limit
    if burst < limit:  # a bucket of `burst` refilling limit/per (+1 ms: truncation)
        for i, first in enumerate(admitted):
            for j in range(i, len(admitted)):
                assert j - i + 1 <= burst + (admitted[j] - first + TICK) * limit / per + 1e-9


def test_threads_on_two_handles_admit_exactly_the_limit(stores: Stores) -> None:
    """8 threads, 2 handles, 25 asks each at one instant: exactly 30 of 200 get in."""
    handles = windows(stores, Rate(30, per=1.0), handles=2)
    admitted: list[int] = []
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        start.wait()
        for _ in range(25):
            if handles[n % 2].try_acquire(T0) == 0:
                admitted.append(n)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(admitted) == 30
    assert [h.try_acquire(T0 + 1 + TICK) for h in handles] == [0.0, 0.0]


def test_a_state_from_elsewhere_starts_over(stores: Stores) -> None:
    """An unreadable or foreign state (another rate list, the old token bucket's) is fresh."""
    first, second = windows(stores, Rate(2, per=1.0), handles=2)
    first.try_acquire(T0)
    other = ShortWindow(api_profile(rates=(Rate(2, per=1.0), Rate(9, per=9.0))), second.store)

    assert other.available(T0) == 2  # two rates read a one-rate state as fresh
    algorithm, rates = SlidingCap(), [PyrateRate(2, 1000)]
    assert algorithm.step(rates, (7, 7, 7), 5, 1)[0] == (5, 0, 1, 5, 1)
    assert algorithm.step(rates, (), 5, 1)[0] == (5, 0, 1, 5, 1)


def test_status_counts_what_may_go_now(stores: Stores) -> None:
    """available(): the room left in the window, and in the bucket when burst < limit."""
    (capped,) = windows(stores, Rate(5, per=1.0))
    (smooth,) = windows(stores, Rate(5, per=1.0, burst=2))
    for _ in range(3):
        capped.try_acquire(T0)
    smooth.try_acquire(T0)

    assert capped.available(T0) == 2
    assert capped.available(T0 + 1 + TICK) == 5
    assert smooth.available(T0) == 1
    assert smooth.available(T0 + 0.2) == 2
    assert windows(stores)[0].available(T0) is None


def test_a_clock_behind_the_state_waits_from_its_own_clock(stores: Stores) -> None:
    """A process whose reading is older than the last check (it read its clock, then
    waited for the lock) is judged at the later time; its wait is from its own clock."""
    ahead, behind = windows(stores, Rate(2, per=1.0), handles=2)
    assert ahead.try_acquire(T0) == 0
    assert ahead.try_acquire(T0 + 0.5) == 0
    assert ahead.try_acquire(T0 + 1.001) == 0  # the first has left

    wait = behind.try_acquire(T0 + 0.9)

    assert wait == pytest.approx(1.501 - 0.9 - FRACTION, abs=2e-6)  # when T0 + 0.5 leaves
    assert behind.try_acquire(T0 + 0.9 + wait) == 0


def test_time_never_goes_back_for_the_state(stores: Stores) -> None:
    """Admitted on a clock behind the last check, a request is stamped at the later time:
    the log stays in order and counts it for as long as the later time says."""
    ahead, behind = windows(stores, Rate(3, per=1.0), handles=2)
    assert ahead.try_acquire(T0 + 1.0) == 0

    assert behind.try_acquire(T0 + 0.5) == 0

    later = int((T0 + 1.0) * 1000)
    assert behind.store.read(behind.algorithm, behind.rates) == (later, 0, 1, later, 2)


@st.composite
def checks(draw: st.DrawFn) -> tuple[list[PyrateRate], list[tuple[int, int]]]:
    """Rates (some above CAP, so on a coarser grid) and (time step ms, weight) pairs.
    Steps land on the edges of the windows and the grid; some go back, as readings
    from several processes do."""
    rate = st.builds(
        lambda limit, interval, smooth: PyrateRate(limit, interval, max(limit - smooth, 1)),
        st.integers(1, 6) | st.integers(1, 3 * CAP),
        st.integers(1, 5000),
        st.integers(0, 3 * CAP) | st.just(0),
    )
    rates = draw(st.lists(rate, min_size=1, max_size=3))
    # -3,600,000: the clock stepped back an hour; -JUMP_MS - 1: just far enough to count.
    edges = {0, 1, 7, -5, -3_600_000, -JUMP_MS - 1, -JUMP_MS}
    for each in rates:
        edges |= {each.interval - 1, each.interval, each.interval + 1, grid(each)}
        edges |= {each.interval // max(each.limit, 1), -grid(each), -each.interval // 2}
    step = st.sampled_from(sorted(edges)) | st.integers(0, 3000)
    weight = st.sampled_from([1, 1, 1, 2, 3])
    return rates, draw(st.lists(st.tuples(step, weight), min_size=1, max_size=120))


@settings(max_examples=60, deadline=None)
@given(checks())
def test_redis_runs_the_same_algorithm(
    prefix: str, case: tuple[list[PyrateRate], list[tuple[int, int]]]
) -> None:
    """The Lua script and SlidingCap.step agree on every decision, every wait and the
    state they leave (the same string SQLite keeps)."""
    import redis

    from quotaflow._state._redis import _RedisWindow

    rates, steps = case
    algorithm, local = SlidingCap(), InMemoryStateStore()
    client = redis.Redis.from_url(REDIS_URL)
    remote = _RedisWindow(client, key=f"{prefix}:same:{uuid.uuid4().hex}")
    try:
        now = int(T0 * 1000)
        for step, weight in steps:
            now += step
            mine, theirs = (s.check(algorithm, rates, now, weight) for s in (local, remote))
            assert (theirs.failing_rate, theirs.retry_after_ms) == (
                mine.failing_rate,
                mine.retry_after_ms,
            )
        theirs_left, ttl = remote.read(algorithm, rates), client.pttl(remote.key)
        # -2: gone (nothing admitted, or its few milliseconds already ran out on a busy
        # machine: Redis expires in real time; it then reads as a fresh state); 0:
        # expiring this very millisecond.
        gone = ttl == -2 and theirs_left == algorithm.initial(rates)
        assert gone or theirs_left == local.read(algorithm, rates)
        assert ttl == -2 or 0 <= ttl <= ttl_ms(rates)
    finally:
        remote.reset()
        client.close()


# -- the gate: the pause and the circuit breaker, shared -------------------------------


def test_a_pause_holds_every_handle_and_only_moves_later(stores: Stores) -> None:
    """Paused on one handle until T: another waits until T exactly (not a millisecond
    less), a shorter pause changes nothing, and at T the state is the old layout again."""
    first, second, third = windows(stores, Rate(5, per=1.0), handles=3)
    until = T0 + 30

    first.pause(until, T0)
    first.pause(T0 + 10, T0)  # earlier: no effect
    wait = second.try_acquire(T0)

    assert wait == pytest.approx(30, abs=TICK)
    assert wait >= 30
    assert second.try_acquire(T0 + wait - 0.001) > 0
    assert third.try_acquire(T0 + 29.99) > 0
    assert third.available(T0 + 29.99) == 0
    assert third.try_acquire(T0 + wait) == 0
    stamp = int((T0 + wait) * 1000)
    assert third.store.read(third.algorithm, third.rates) == (stamp, 0, 1, stamp, 1)


def test_a_pause_holds_without_rates(stores: Stores) -> None:
    """A profile without rates is paused all the same; otherwise its check stores nothing."""
    first, second = windows(stores, handles=2)
    assert second.try_acquire(T0) == 0
    assert second.store.read(second.algorithm, second.rates) == (0,)

    first.pause(T0 + 4, T0)

    assert second.try_acquire(T0 + 1) == pytest.approx(3, abs=TICK)
    assert second.try_acquire(T0 + 4.001) == 0
    assert second.available(T0) is None


def test_a_pause_learnt_from_the_store_needs_no_more_checks(stores: Stores) -> None:
    """Once a handle knows of a pause, it answers from memory until it ends."""
    first, second = windows(stores, Rate(5, per=1.0), handles=2)
    first.pause(T0 + 30, T0)
    second.try_acquire(T0)
    calls: list[int] = []
    real = second.store.check

    def counting(*args: object) -> object:
        calls.append(1)
        return real(*args)  # type: ignore[arg-type]

    second.store.check = counting  # type: ignore[method-assign]
    assert second.try_acquire(T0 + 10) > 0
    assert calls == []


def test_an_old_state_loads_and_the_gate_survives_other_rates() -> None:
    """A state of the layout before the gate is read as before; a gate is read whatever
    rates read it (its books may start over, it does not)."""
    algorithm, one, two = SlidingCap(), [PyrateRate(2, 1000)], [PyrateRate(2, 1000)] * 2
    old = (5, 0, 1, 5, 1)  # last, then one rate: tat, one pair (stamp 5, 1 unit)

    state, verdict = algorithm.step(one, old, 6, 1)
    assert verdict.allowed
    assert state == (6, 0, 2, 5, 1, 6, 1)
    assert algorithm.step(one, state, 7, 1)[1].retry_after_ms == 1000 + 5 - 7 + 1

    held, _ = SlidingCap(GateOp.hold(9000)).step(one, old, 6, 1)
    # The books as they were, stamped with the operation's time (steps back are told
    # by it, see test_a_clock_stepped_back_*).
    assert held == (6, *old[1:], 9000, 0, 0, 0, -1)
    for rates in (one, two, []):
        refused = algorithm.step(rates, held, 7, 1)[1]
        assert isinstance(refused, WindowDecision)
        assert (refused.failing_rate, refused.retry_after_ms) == (PAUSED, 9000 - 7)
    # Negative numbers are never a gate's, nor a book's: not ours, start over.
    assert algorithm.step(one, (*old, 9000, -4, 0, 0, -1), 7, 1)[0] == (7, 0, 1, 7, 1)


def breakers(
    stores: Stores, handles: int = 2, threshold: int = 3, cooldown: float = 10.0
) -> tuple[list[Breaker], list[list[str]]]:
    """Breakers of one profile on ``handles`` handles of one state, and what each one's
    CircuitChanged callback heard."""
    heard: list[list[str]] = [[] for _ in range(handles)]
    found = [
        Breaker("api", threshold, cooldown, heard[n].append, window)
        for n, window in enumerate(windows(stores, Rate(50, per=1.0), handles=handles))
    ]
    return found, heard


def test_failures_in_a_row_are_counted_over_all_handles(stores: Stores) -> None:
    """Two failures on one handle and one on the other open the circuit; the event is the
    opener's. The other handle learns it from its next check and refuses at once."""
    (first, second), heard = breakers(stores)
    first.record(False, T0)
    first.record(False, T0)

    second.record(False, T0 + 1)

    assert heard == [[], ["open"]]
    assert first.allow(T0 + 2) == 0  # it has not checked since
    assert first.window.try_acquire(T0 + 2) == 0
    with pytest.raises(quotaflow.CircuitOpen) as refused:
        first.allow(T0 + 2)
    assert refused.value.retry_after == pytest.approx(9, abs=TICK)


def test_a_success_resets_the_count_for_every_handle(stores: Stores) -> None:
    """Failures must be in a row across handles: one success in between resets them."""
    (first, second), heard = breakers(stores)
    first.record(False, T0)
    first.record(False, T0)
    second.window.try_acquire(T0)  # it learns of the two failures

    second.record(True, T0)
    first.record(False, T0)

    assert heard == [[], []]
    assert first.window.gate == GateState(failures=1)


def test_one_probe_at_a_time_across_handles(stores: Stores) -> None:
    """After the cool-down one handle gets the probe, the other is refused; a probe that
    never went frees it; a failed probe opens the circuit again without an event; a
    successful one closes it, and the event is the prober's."""
    (first, second), heard = breakers(stores)
    for _ in range(3):
        first.record(False, T0)
    second.window.try_acquire(T0)
    after = T0 + 10.001

    probe = first.allow(after)
    assert probe
    with pytest.raises(quotaflow.CircuitOpen):
        second.allow(after)

    first.forget_probe(probe, after)
    again = second.allow(after)
    assert again
    second.record(False, after, again)
    with pytest.raises(quotaflow.CircuitOpen):
        first.allow(after)  # its view is old; the store says: open for another cool-down
    with pytest.raises(quotaflow.CircuitOpen):
        first.allow(after + 9.9)

    last = first.allow(after + 10.001)
    first.record(True, after + 10.001, last)
    assert heard == [["open", "closed"], []]
    assert second.allow(after + 10.001) == 0  # the store says closed
    assert second.window.gate == NO_GATE


def test_a_dead_probers_lease_runs_out(stores: Stores) -> None:
    """A probe whose process never reports blocks the next one for PROBE_LEASE at most."""
    (first, second), _ = breakers(stores)
    for _ in range(3):
        first.record(False, T0)
    after = T0 + 10.001
    assert first.allow(after)

    second.window.try_acquire(after)
    with pytest.raises(quotaflow.CircuitOpen):
        second.allow(after + PROBE_LEASE - 0.01)
    assert second.allow(after + PROBE_LEASE + 0.01)


def test_threads_on_two_handles_take_one_probe(stores: Stores) -> None:
    """8 threads on 2 handles ask for the probe at one instant: exactly one gets it."""
    found, _ = breakers(stores, handles=2)
    for _ in range(3):
        found[0].record(False, T0)
    found[1].window.try_acquire(T0)
    after, granted, refused = T0 + 10.001, [], []
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        start.wait()
        try:
            token = found[n % 2].allow(after)
        except quotaflow.CircuitOpen:
            refused.append(n)
        else:
            granted.append(token)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert (len(granted), len(refused)) == (1, 7)
    assert granted[0] > 0


def test_an_unusable_state_file_keeps_it_all_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """State file busy past the timeout: the rate, the pause and the breaker hold in the
    process's memory instead of letting everything through."""
    db = StateDB(tmp_path / "state.db")
    window = ShortWindow(api_profile(rates=(Rate(2, per=1.0),)), SqliteWindowStore(db, "rate:api"))
    breaker = Breaker("api", 1, 10.0, window=window)

    def busy() -> None:
        raise LocalStateError("database is locked")

    monkeypatch.setattr(db, "transaction", busy)

    assert [window.try_acquire(T0) for _ in range(3)][2] > 0
    breaker.record(False, T0)
    with pytest.raises(quotaflow.CircuitOpen):
        breaker.allow(T0 + 1)
    db.close()


@st.composite
def operations(draw: st.DrawFn) -> tuple[list[PyrateRate], list[tuple[int, int, int, int, int]]]:
    """Rates, and (time step ms, operation, three arguments) with checks in between.
    Arguments land where decisions turn: a hold before or after now, thresholds of 1
    to 3, probe and forget with the token granted last (or a wrong one)."""
    rates = draw(
        st.lists(st.builds(PyrateRate, st.integers(1, 4), st.integers(1, 400)), max_size=2)
    )
    step = st.sampled_from([0, 1, 5, 100, 399, 400, 401, 1000, -3_600_000, -JUMP_MS - 1])
    step |= st.integers(0, 3000)
    check = st.tuples(step, st.just(0), st.sampled_from([1, 1, 2]), st.just(0), st.just(0))
    hold = st.tuples(step, st.just(1), st.integers(-500, 3000), st.just(0), st.just(0))
    probe = st.tuples(step, st.just(2), st.sampled_from([1, 500, 2000]), st.just(0), st.just(0))
    fail = st.tuples(step, st.just(3), st.integers(1, 3), st.integers(0, 2000), st.booleans())
    succeed = st.tuples(step, st.just(4), st.just(0), st.just(0), st.just(0))
    forget = st.tuples(step, st.just(5), st.booleans(), st.just(0), st.just(0))
    op = check | check | hold | probe | probe | fail | fail | succeed | forget
    return rates, draw(st.lists(op.map(lambda t: tuple(map(int, t))), min_size=1, max_size=80))


@settings(max_examples=80, deadline=None)
@given(operations())
def test_redis_runs_the_same_gate(
    prefix: str, case: tuple[list[PyrateRate], list[tuple[int, int, int, int, int]]]
) -> None:
    """The Lua script and SlidingCap.step agree on every verdict (refusal, wait, the gate,
    a granted probe, a change of the circuit) and on the state they leave, with checks
    and the gate's operations interleaved."""
    import redis

    from quotaflow._state._redis import _RedisWindow

    rates, steps = case
    local = InMemoryStateStore()
    client = redis.Redis.from_url(REDIS_URL)
    remote = _RedisWindow(client, key=f"{prefix}:gate:{uuid.uuid4().hex}")
    try:
        now, token = int(T0 * 1000), 0
        for step, op, a, b, c in steps:
            now += step
            if op == 0:
                algorithm, weight = SlidingCap(), a
            elif op == 1:
                algorithm, weight = SlidingCap(GateOp.hold(now + a)), 1
            elif op == 2:
                algorithm, weight = SlidingCap(GateOp.take_probe(a)), 1
            elif op == 3:
                algorithm, weight = SlidingCap(GateOp.fail(a, b, token if c else 0)), 1
            elif op == 4:
                algorithm, weight = SlidingCap(GateOp.succeed()), 1
            else:
                algorithm, weight = SlidingCap(GateOp.forget(token if a else token + 1)), 1
            mine, theirs = (s.check(algorithm, rates, now, weight) for s in (local, remote))
            assert isinstance(mine, WindowDecision)
            assert isinstance(theirs, WindowDecision)
            assert theirs.failing_rate is mine.failing_rate
            assert (theirs.retry_after_ms, theirs.gate) == (mine.retry_after_ms, mine.gate)
            assert (theirs.granted, theirs.changed) == (mine.granted, mine.changed)
            token = mine.granted or token
        theirs_left, ttl = remote.read(SlidingCap(), rates), client.pttl(remote.key)
        # Redis expires in real time: a state of a few milliseconds (rates of 1 ms) may
        # be gone on a busy machine; it then reads as a fresh one.
        gone = ttl == -2 and theirs_left == SlidingCap().initial(rates)
        assert gone or theirs_left == local.read(SlidingCap(), rates)
        # It expires: gone (-2) or due in ttl ms, 0 when under 1 ms is left (never -1).
        assert ttl == -2 or ttl >= 0
    finally:
        remote.reset()
        client.close()


def test_a_pyrate_limiter_whose_internals_changed_is_refused_at_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The internals of pyrate-limiter the window relies on are checked once at import
    (``_state._pyrate``); if one changed, building a limited client fails loudly with a
    ConfigError naming pyrate-limiter, never a limiter that silently counts wrong."""
    from quotaflow._state import _pyrate

    assert _pyrate.PROBLEMS == []  # the installed version is one quotaflow works with
    monkeypatch.setattr(_pyrate, "PROBLEMS", ["GCRA._emission_us is gone"])
    with pytest.raises(quotaflow.ConfigError, match=r"pyrate-limiter .*_emission_us is gone"):
        quotaflow.make_client(
            profiles=[api_profile(rates=(Rate(2, per=1.0),))], plugins=False, state_dir=tmp_path
        )
