"""8 threads x 2,000 requests of mixed traffic: no unexpected exception, and the quota
ledger matches the upstream's own count exactly."""

from __future__ import annotations

import sqlite3
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor

import httpx

import quotaflow
from quotaflow import ApiProfile, Quota

THREADS, REQUESTS = 8, 2000
BASE = "https://load.test"


class Upstream:
    """Deterministic mix: a URL's fate depends on its path and how often it was asked."""

    def __init__(self) -> None:
        self.charged = 0  # calls that reached the API (connect errors never do)
        self.asked: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        with self._lock:
            count = self.asked[path] = self.asked.get(path, 0) + 1
            fate = zlib.crc32(f"{path}:{count}".encode()) % 20
            if fate == 0:
                raise httpx.ConnectError("refused")
            self.charged += 1
        if fate == 1:
            return httpx.Response(503)
        if fate == 2:
            return httpx.Response(200, json={"errors": {"x": "bad"}})
        return httpx.Response(200, json={"path": path})


def classify(response: httpx.Response) -> quotaflow.Verdict:
    return "error" if response.content.startswith(b'{"errors"') else "ok"


def test_mixed_load(tmp_path, traveller) -> None:
    """Hits, misses, errors, retries and stale answers from 8 threads at once."""
    upstream = Upstream()
    profile = ApiProfile(
        name="load",
        hosts=("load.test",),
        quota=Quota(1_000_000),
        # Fresh for 1 s of the simulated clock, which the workers move as they go.
        freshness=lambda request, response, now: 1,
        max_stale=3600,
        classify=classify,
        retries=1,
        breaker_threshold=0,
    )
    clock = quotaflow.Clock(sleep=lambda seconds: None)
    unexpected: list[BaseException] = []
    outcomes: dict[str, int] = {}
    lock = threading.Lock()

    with quotaflow.make_client(
        profiles=[profile],
        plugins=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(upstream),
        clock=clock,
    ) as client:

        def worker(index: int) -> None:
            for n in range(REQUESTS):
                if index == 0 and n % 200 == 0:
                    traveller.shift(1)  # let answers go stale now and then
                try:
                    response = client.get(
                        f"{BASE}/r{(n * 7 + index) % 150}", extensions={"priority": "critical"}
                    )
                    kind = response.extensions["quotaflow"].cache.value
                    if response.status_code >= 500:
                        kind = "error"
                except (httpx.ConnectError, quotaflow.QuotaflowError) as exc:
                    kind = type(exc).__name__
                except BaseException as exc:  # what the test is looking for
                    with lock:
                        unexpected.append(exc)
                    continue
                with lock:
                    outcomes[kind] = outcomes.get(kind, 0) + 1

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(worker, range(THREADS)))

    with sqlite3.connect(tmp_path / "state.db") as db:
        total, remaining = db.execute("SELECT total, remaining FROM quota").fetchone()
        (inflight,) = db.execute("SELECT COUNT(*) FROM inflight").fetchone()
    assert unexpected == []
    assert sum(outcomes.values()) == THREADS * REQUESTS
    assert {"hit", "miss", "stale"} <= set(outcomes), outcomes
    assert inflight == 0
    assert total - remaining == upstream.charged
