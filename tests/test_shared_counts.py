"""Counts across machines: the status counters (by day, hour, priority and endpoint,
and the last error) live in the shared state, so two clients on different state
directories sharing one Redis prefix read the same numbers. Real Redis at 127.0.0.1:6379."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import respx

from quotaflow import _cli_status
from quotaflow._status import ProfileStatus
from tests.conftest import Harness, api_profile
from tests.stub_server import REDIS_URL

BASE = "https://api.test"


def status_of(state: Path, redis_url: str | None, prefix: str, *, code: bool) -> ProfileStatus:
    """The ``api`` profile's status, read as ``quotaflow status`` does; ``code``: the
    profile is defined in code (passed in), else only the shared state knows it."""
    found = _cli_status.collect(state, redis_url, prefix, [api_profile()] if code else None)
    (status,) = [s for s in found if s.profile == "api"]
    return status


def make_calls(first: Harness, second: Harness) -> None:
    """Machine one: 2 critical misses on /odds/a and /odds/b, a critical hit on /odds/a,
    a low miss on /scores (query dropped from the endpoint); machine two: a normal hit
    on /odds/a (the shared cache), a high miss on /odds/c, a failing low call."""
    first.get(f"{BASE}/odds/a", extensions={"priority": "critical"})
    first.get(f"{BASE}/odds/b?market=h2h", extensions={"priority": "critical"})
    first.get(f"{BASE}/odds/a", extensions={"priority": "critical"})
    first.get(f"{BASE}/scores?day=1", extensions={"priority": "low"})
    second.get(f"{BASE}/odds/a", extensions={"priority": "normal"})
    second.get(f"{BASE}/odds/c", extensions={"priority": "high"})
    second.get(f"{BASE}/broken", extensions={"priority": "low"})


def test_two_machines_on_one_prefix_read_the_same_counts(
    stack: Callable[..., Harness], router: respx.Router, prefix: str, tmp_path: Path
) -> None:
    """Each machine counts what it answered into the shared state: both status reads
    (and one from a third, empty state directory) agree with the calls made."""
    headers = {"x-remaining": "90", "x-cost": "1"}
    odds = router.get(url__startswith=f"{BASE}/odds/").respond(200, json={"ok": 1}, headers=headers)
    scores = router.get(url__startswith=f"{BASE}/scores").respond(
        200, json={"ok": 2}, headers=headers
    )
    broken = router.get(f"{BASE}/broken").respond(503, text="down")
    shared = {"redis_url": REDIS_URL, "redis_prefix": prefix}
    first = stack(state_dir=tmp_path / "one", **shared)
    second = stack(state_dir=tmp_path / "two", **shared)

    make_calls(first, second)
    first.close()  # the counters are written when the client closes (or every 5 s)
    second.close()

    assert (odds.call_count, scores.call_count, broken.call_count) == (3, 1, 1)
    reads = [status_of(tmp_path / name, REDIS_URL, prefix, code=True) for name in ("one", "two")]
    assert reads[0].as_dict() == reads[1].as_dict()
    status = reads[0]
    assert status.today["misses"] == 4  # the upstream calls answered 200
    assert status.today["hits"] == 2
    assert status.today["spent"] == 4
    assert status.last_error is not None
    assert "503" in status.last_error
    assert sum(h["requests"] for h in status.hours) == 6  # the failed call ended in an error
    priorities = {
        name: (c["requests"], c["hits"], c["misses"]) for name, c in status.by_priority.items()
    }
    assert priorities == {
        "critical": (3, 1, 2),
        "low": (1, 0, 1),
        "normal": (1, 1, 0),
        "high": (1, 0, 1),
    }
    assert {name: c["requests"] for name, c in status.by_endpoint.items()} == {
        "/odds/a": 3,
        "/odds/b": 1,
        "/odds/c": 1,
        "/scores": 1,
    }
    assert status.by_priority["critical"]["spent"] == 2

    # A third machine, with nothing of its own and the profile not installed: the
    # shared state alone shows the counts and the ledger's remaining.
    stranger = status_of(tmp_path / "three", REDIS_URL, prefix, code=False)
    assert status.remaining is not None
    assert (stranger.total, stranger.remaining) == (status.total, status.remaining)
    assert stranger.by_priority == status.by_priority
    assert stranger.today == status.today


def test_one_sqlite_state_counts_by_hour_priority_and_endpoint(
    stack: Callable[..., Harness], router: respx.Router, tmp_path: Path
) -> None:
    """On a SQLite state two clients on one directory add to the same rows."""
    router.get(url__startswith=f"{BASE}/odds/").respond(200, json={"ok": 1})
    router.get(url__startswith=f"{BASE}/scores").respond(200, json={"ok": 2})
    router.get(f"{BASE}/broken").respond(503, text="down")
    first, second = stack(), stack()
    make_calls(first, second)
    first.close()
    second.close()

    status = status_of(tmp_path / "state", None, "quotaflow", code=True)
    assert {n: c["requests"] for n, c in status.by_priority.items()} == {
        "critical": 3,
        "high": 1,
        "low": 1,
        "normal": 1,
    }
    assert status.by_endpoint["/odds/a"]["hits"] == 2
    assert [h["requests"] for h in status.hours] == [6]
