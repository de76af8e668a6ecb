"""Shared fixtures: a test API profile, a respx router at the bottom of the stack, a
simulated clock, and one harness that drives the sync or the async client."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import hypothesis
import pytest
import redis
import respx
import time_machine

import quotaflow
from quotaflow import ApiProfile, Quota, QuotaHeaders, Rate
from quotaflow._state._redis import RedisBackend, redis_backend

from .stub_server import REDIS_URL, redis_prefix

# Property tests draw the same examples in every run (CI included) and never replay a
# saved example database (.hypothesis/): a failure is one anybody can reproduce.
hypothesis.settings.register_profile("quotaflow", derandomize=True, database=None)
hypothesis.settings.load_profile("quotaflow")

START = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
BASE = "https://api.test"


def classify(response: httpx.Response) -> quotaflow.Verdict:
    """API-Sports style: a 200 whose body carries errors is an error."""
    if response.status_code == 200 and response.content.startswith(b'{"errors"'):
        return "error"
    if response.status_code == 401 and b"QUOTA" in response.content:
        return "quota_exhausted"
    return "ok"


def api_profile(**changes: Any) -> ApiProfile:
    """A profile for the fake API at api.test: 5/s, 100 units a month, fresh 60 s."""
    settings: dict[str, Any] = {
        "name": "api",
        "hosts": ("api.test",),
        "rates": (Rate(5, per=1.0, burst=5),),
        "quota": Quota(100),
        "read_quota": QuotaHeaders(remaining="x-remaining", used="x-used", last="x-cost"),
        "freshness": lambda request, response, now: 60,
        "max_stale": 3600,
        "secret_params": ("key",),
        "secret_headers": ("x-token",),
        "classify": classify,
        # Retries have their own tests; elsewhere one failure is one upstream call.
        "retries": 0,
        # classify reads the body.
        "reads_body": True,
    }
    settings.update(changes)
    return ApiProfile(**settings)


@pytest.fixture(autouse=True)
def _no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's proxy variables must not route the tests' requests (a client quotaflow
    builds honours them, as httpx.Client does); tests that want them set their own."""
    for scheme in ("http", "https", "all", "no"):
        monkeypatch.delenv(f"{scheme}_proxy", raising=False)
        monkeypatch.delenv(f"{scheme.upper()}_PROXY", raising=False)


@pytest.fixture
def traveller() -> Iterator[time_machine.Traveller]:
    """Time stands still at START unless a test (or a sleep) moves it."""
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def sleeps(traveller: time_machine.Traveller) -> list[float]:
    """Every wait the stack asked for, in seconds (the clock moves instead of sleeping)."""
    return []


@pytest.fixture
def clock(traveller: time_machine.Traveller, sleeps: list[float]) -> quotaflow.Clock:
    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        traveller.shift(seconds)

    async def asleep(seconds: float) -> None:
        sleep(seconds)

    # Jitter draws are always 0.5, so backoffs are exactly half their ceiling.
    return quotaflow.Clock(sleep=sleep, asleep=asleep, random=lambda: 0.5)


@pytest.fixture
def router() -> respx.Router:
    return respx.Router(assert_all_called=False)


class Harness:
    """Makes requests through a sync or an async quotaflow client, the same way."""

    def __init__(self, mode: str, portal: Any, factory: Callable[..., Any]) -> None:
        self.mode = mode
        self._portal = portal
        self._factory = factory
        self.client: Any = None

    def open(self, **kwargs: Any) -> Harness:
        self.close()
        self.client = self._factory(**kwargs)
        return self

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if self.mode == "sync":
            return self.client.request(method, url, **kwargs)  # type: ignore[no-any-return]
        return self._portal.call(partial(self.client.request, method, url, **kwargs))  # type: ignore[no-any-return]

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def close(self) -> None:
        if self.client is None:
            return
        if self.mode == "sync":
            self.client.close()
        else:
            self._portal.call(self.client.aclose)
        self.client = None


@pytest.fixture(params=["sync", "async"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    router: respx.Router,
    clock: quotaflow.Clock,
) -> Iterator[Callable[..., Harness]]:
    """``stack(**make_client_kwargs)`` opens a client over the router, sync or async."""
    mode = request.param
    with anyio.from_thread.start_blocking_portal() as portal:
        harnesses: list[Harness] = []

        def open_stack(**kwargs: Any) -> Harness:
            settings: dict[str, Any] = {
                "profiles": [api_profile()],
                "plugins": False,
                "state_dir": tmp_path / "state",
                "transport": httpx.MockTransport(router.handler),
                "clock": clock,
            }
            settings.update(kwargs)
            factory = quotaflow.make_client if mode == "sync" else quotaflow.make_async_client
            harness = Harness(mode, portal, factory).open(**settings)
            harnesses.append(harness)
            return harness

        yield open_stack
        for harness in harnesses:
            harness.close()


def info(response: httpx.Response) -> quotaflow.ResponseInfo:
    found = response.extensions["quotaflow"]
    assert isinstance(found, quotaflow.ResponseInfo)
    return found


def files_under(path: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.fixture
def prefix() -> Iterator[str]:
    """A Redis key prefix of its own for one test, cleaned up after it (a module may
    override it); Redis must answer under CI=true."""
    with redis_prefix() as prefix:
        yield prefix


@pytest.fixture
def raw(prefix: str) -> Iterator[redis.Redis]:
    """A plain Redis client, to look at what quotaflow stored."""
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


def held_for_30s(
    client: Harness, warm: respx.Route, fresh: respx.Route, sleeps: list[float]
) -> httpx.Response:
    """Check that the profile holds off for 30 s from now, with ``/warm`` stored and
    stale and ``/fresh`` never fetched: LOW is answered stale or refused, NORMAL (max
    wait 5 s) is refused and told 30 s, nothing is sent; then CRITICAL (max wait 30 s)
    waits exactly 30 s and goes upstream. Returns CRITICAL's response."""
    stale = client.get(f"{BASE}/warm", extensions={"priority": "low"})
    assert info(stale).stale_reason == "rate_limit"
    assert stale.json() == {"v": 1}
    with pytest.raises(quotaflow.RateLimited):
        client.get(f"{BASE}/fresh", extensions={"priority": "low"})
    with pytest.raises(quotaflow.RateLimited) as refused:
        client.get(f"{BASE}/fresh")
    assert refused.value.retry_after == pytest.approx(30)
    assert (warm.call_count, fresh.call_count, sleeps) == (1, 0, [])

    response = client.get(f"{BASE}/fresh", extensions={"priority": "critical"})

    assert sleeps == [30.0]
    assert info(response).waited == pytest.approx(30)
    return response


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """SQL statements on every SQLite file the client opens, by file name (the client
    must be opened after this fixture)."""
    counts: Counter[str] = Counter()
    connect = sqlite3.connect

    def traced(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = connect(database, *args, **kwargs)
        name = Path(str(database)).name
        connection.set_trace_callback(lambda _sql: counts.update([name]))
        return connection

    monkeypatch.setattr(sqlite3, "connect", traced)
    return counts


@pytest.fixture
def open_backend(prefix: str, tmp_path: Path) -> Iterator[Callable[[], RedisBackend]]:
    """``open_backend()``: a Redis backend on the test's prefix, as another process's
    (a state directory of its own), closed afterwards."""
    backends: list[RedisBackend] = []

    def build() -> RedisBackend:
        directory = tmp_path / f"state-{len(backends)}"
        directory.mkdir()
        backend = redis_backend(
            REDIS_URL, prefix=prefix, fail="closed", directory=directory, retention=3600.0
        )
        assert isinstance(backend, RedisBackend)
        backends.append(backend)
        return backend

    yield build
    for backend in backends:
        backend.close()
