"""Reserve the worst case before sending, settle to what the API reports, refund the
rest (issue 14): in one client, across two ledgers on one state, and two processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx

from quotaflow import Priority, Quota, QuotaExhausted, QuotaReading
from quotaflow._state._db import StateDB
from quotaflow._state._ledger import Ledger
from quotaflow._state._redis import redis_backend
from quotaflow._state._sqlite import SqliteLedger

from .conftest import BASE, api_profile, info
from .stub_server import REDIS_URL

URL = f"{BASE}/odds"


def in_flight(state: Path) -> int:
    with sqlite3.connect(state / "state.db") as db:
        (units,) = db.execute("SELECT COALESCE(SUM(cost), 0) FROM inflight").fetchone()
    return int(units)


def test_the_worst_case_is_reserved_then_settled_to_what_the_api_says(
    stack, router: respx.Router, tmp_path: Path
) -> None:
    """The profile's cost (3, the worst case) is held while the request is out; the
    answer's x-cost (1, then 0 for an empty answer) is what is charged; the rest comes
    back, and nothing stays reserved."""
    state = tmp_path / "state"
    held: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        held.append(in_flight(state))  # what the ledger holds while this one is out
        last = "0" if request.url.params.get("empty") else "1"
        return httpx.Response(200, json=[], headers={"x-cost": last})

    route = router.get(url__startswith=URL).mock(side_effect=answer)
    client = stack(profiles=[api_profile(cost=lambda request: 3)])

    charged = client.get(f"{URL}?a=1")
    empty = client.get(f"{URL}?a=2&empty=1")

    assert route.call_count == 2
    assert held == [3, 3]
    assert (info(charged).cost, info(charged).remaining) == (1, 99)
    assert (info(empty).cost, info(empty).remaining) == (0, 99)
    assert in_flight(state) == 0


@pytest.fixture(params=["sqlite", "redis"])
def two_ledgers(request, tmp_path: Path, prefix: str) -> Iterator[tuple[Ledger, Ledger]]:
    """Two ledgers on one shared state, as two processes have them."""
    if request.param == "sqlite":
        dbs = [StateDB(tmp_path / "state.db") for _ in range(2)]
        yield SqliteLedger(dbs[0]), SqliteLedger(dbs[1])
        for db in dbs:
            db.close()
        return
    backends = [
        redis_backend(REDIS_URL, prefix=prefix, fail="closed", directory=tmp_path, retention=3600.0)
        for _ in range(2)
    ]
    yield backends[0].ledger, backends[1].ledger
    for backend in backends:
        backend.close()


def test_a_reservation_holds_units_from_the_other_process_until_refunded(
    two_ledgers: tuple[Ledger, Ledger],
) -> None:
    """5 left: A holds 3 for its request; B's 3 do not fit (2 are free) until A's answer
    says it cost 0 (an empty Odds answer): then they do, and B is settled at its 2."""
    a, b = two_ledgers
    profile = api_profile(quota=Quota(100), rates=())
    now = time.time()
    a.settle(profile, None, 0, QuotaReading(remaining=5, used=95), now)

    ticket_a = a.reserve(profile, Priority.CRITICAL, 3, now)
    with pytest.raises(QuotaExhausted):
        b.reserve(profile, Priority.CRITICAL, 3, now)
    refunded = a.settle(profile, ticket_a, 0, QuotaReading(), now)
    ticket_b = b.reserve(profile, Priority.CRITICAL, 3, now)
    settled = b.settle(profile, ticket_b, 2, QuotaReading(), now)

    assert refunded == 5
    assert settled == 3
    row = a.peek(profile)
    assert row is not None
    assert row.remaining == 3


WORKER = textwrap.dedent(
    """
    import json, os, sys
    import httpx, respx
    import quotaflow
    from quotaflow import ApiProfile, Quota, QuotaHeaders

    state_dir, name, go = sys.argv[1], sys.argv[2], sys.argv[3]
    router = respx.Router(assert_all_called=False)
    # Each request may cost 2 (the profile's worst case); the API charges 1.
    route = router.get(url__startswith="https://api.test/").respond(
        200, json=[], headers={"x-cost": "1"}
    )
    profile = ApiProfile(
        name="api", hosts=("api.test",), quota=Quota(10), max_stale=0,
        cost=lambda request: 2, read_quota=QuotaHeaders(last="x-cost"),
    )
    refused = 0
    with quotaflow.make_client(
        profiles=[profile], plugins=False, state_dir=state_dir,
        transport=httpx.MockTransport(router.handler),
    ) as client:
        while not os.path.exists(go):
            pass
        for n in range(10):
            try:
                client.get(f"https://api.test/{name}/{n}", extensions={"priority": "critical"})
            except quotaflow.QuotaExhausted:
                refused += 1
    print(json.dumps({"upstream": route.call_count, "refused": refused}))
    """
)


def test_two_processes_refund_what_was_not_spent(tmp_path: Path) -> None:
    """10 units, requests reserving 2 and charged 1, from two processes at once: the
    refunds let more than the 5 a worst-case count would through, never past the
    quota, and the ledger ends equal to the API's own count (1 per call)."""
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path / "state"), name, str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    go.touch()
    results = [json.loads(worker.communicate(timeout=60)[0]) for worker in workers]
    upstream = sum(r["upstream"] for r in results)
    with sqlite3.connect(tmp_path / "state" / "state.db") as db:
        (remaining,) = db.execute("SELECT remaining FROM quota WHERE profile = 'api'").fetchone()
        (held,) = db.execute("SELECT COUNT(*) FROM inflight").fetchone()

    assert all(worker.returncode == 0 for worker in workers)
    assert 5 < upstream <= 9  # 9: the 10th would need 2 units with 1 left
    assert remaining == 10 - upstream
    assert held == 0
