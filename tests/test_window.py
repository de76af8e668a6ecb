"""The short window: never more than ``limit`` requests in any ``per`` seconds, ``burst``
at once, whatever holds the state.

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

from quotaflow import Rate
from quotaflow._state import ShortWindow, SqliteStateStore, StateDB
from quotaflow._window import CAP, SlidingCap, grid, ttl_ms
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
        yield lambda key: SqliteStateStore(next(turns), key)
        for db in dbs:
            db.close()
        return
    from quotaflow._redis import redis_backend

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
    edges = {0, 1, 7, -5}
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

    from quotaflow._redis import _RedisWindow

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
        assert remote.read(algorithm, rates) == local.read(algorithm, rates)
        ttl = client.pttl(remote.key)
        assert ttl == -2 or 0 < ttl <= ttl_ms(rates)  # -2: nothing was ever admitted
    finally:
        remote.reset()
        client.close()
