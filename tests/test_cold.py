"""The cold tier: answers a profile marks immutable are kept in ``cold.db`` past any
freshness, bounded by size (least recently used first), and answered from there."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import time_machine

import quotaflow
from quotaflow import Snapshot, _cli_status
from quotaflow._state._sqlite_cold import SqliteColdStore

from .conftest import BASE, api_profile, info
from .stub_server import REDIS_URL

DAY = 86400.0


def archive_only(request: httpx.Request, response: httpx.Response) -> float | None:
    """Answers under /archive never change; /season ones stay 100 s; others are ordinary."""
    if request.url.path.startswith("/archive"):
        return math.inf
    if request.url.path.startswith("/season"):
        return 100.0
    return None


def cold_profile(**changes: Any) -> quotaflow.ApiProfile:
    return api_profile(immutable=archive_only, **changes)


@pytest.fixture
def routes(router: respx.Router) -> dict[str, respx.Route]:
    return {
        name: router.get(f"{BASE}/{name}").respond(json={"v": name}, headers={"x-cost": "3"})
        for name in ("archive/1", "archive/2", "archive/3", "live", "season")
    }


@pytest.mark.parametrize("reads_body", [True, False])
def test_immutable_answer_is_served_cold_past_every_freshness(
    stack: Any,
    routes: dict[str, respx.Route],
    traveller: time_machine.Traveller,
    reads_body: bool,
) -> None:
    """Ten days on (past freshness, max_stale and retention), the archive answer comes
    from the cold store, unread like any hit; an ordinary answer goes upstream again.
    Judged by URL alone, a profile that does not read bodies keeps them as well."""
    client = stack(profiles=[cold_profile(reads_body=reads_body)])
    first = client.get(f"{BASE}/archive/1")
    assert info(first).cache == "miss"
    client.get(f"{BASE}/live")

    traveller.shift(10 * DAY)
    again = client.get(f"{BASE}/archive/1")
    live = client.get(f"{BASE}/live")

    assert again.json() == {"v": "archive/1"}
    assert (info(again).cache, info(again).tier, info(again).stored) == ("hit", "cold", True)
    assert "cold store" in info(again).reason
    assert info(again).ttl is None  # kept for good
    assert info(again).cost == 0
    assert routes["archive/1"].call_count == 1
    assert info(live).cache == "miss"
    assert routes["live"].call_count == 2


def test_cold_store_survives_a_restart(
    stack: Any,
    routes: dict[str, respx.Route],
    traveller: time_machine.Traveller,
    tmp_path: Path,
) -> None:
    """A new client on the same state directory answers from cold.db."""
    stack(profiles=[cold_profile()]).get(f"{BASE}/archive/1")
    traveller.shift(40 * DAY)
    again = stack(profiles=[cold_profile()]).get(f"{BASE}/archive/1")

    assert info(again).tier == "cold"
    assert routes["archive/1"].call_count == 1
    assert (tmp_path / "state" / "cold.db").exists()


def test_stable_for_a_stated_time_then_asked_again(
    stack: Any, routes: dict[str, respx.Route], traveller: time_machine.Traveller
) -> None:
    """An answer stable for 100 s is kept that long, then fetched again."""
    client = stack(profiles=[cold_profile(freshness=lambda request, response, now: 10)])
    client.get(f"{BASE}/season")
    traveller.shift(50)
    kept = client.get(f"{BASE}/season")
    assert (info(kept).tier, info(kept).ttl) == ("cold", 50.0)
    traveller.shift(60)
    assert info(client.get(f"{BASE}/season")).cache == "miss"
    assert routes["season"].call_count == 2


def test_bounded_by_size_least_recently_used_first(
    stack: Any, routes: dict[str, respx.Route], traveller: time_machine.Traveller
) -> None:
    """cold_bytes bounds the bodies kept: the least recently used leaves first."""
    size = len(b'{"v":"archive/1"}')
    client = stack(profiles=[cold_profile()], cold_bytes=2 * size, hot_entries=0)
    client.get(f"{BASE}/archive/1")
    client.get(f"{BASE}/archive/2")
    traveller.shift(10 * DAY)
    assert info(client.get(f"{BASE}/archive/1")).tier == "cold"  # 1 is now the most recent
    client.get(f"{BASE}/archive/3")  # 2 leaves
    traveller.shift(10 * DAY)

    assert info(client.get(f"{BASE}/archive/1")).tier == "cold"
    assert info(client.get(f"{BASE}/archive/3")).tier == "cold"
    assert info(client.get(f"{BASE}/archive/2")).cache == "miss"
    assert routes["archive/2"].call_count == 2


def test_failures_and_errors_are_never_kept(
    stack: Any, router: respx.Router, traveller: time_machine.Traveller
) -> None:
    """An error body or a 5xx under an immutable path is not kept cold."""
    route = router.get(f"{BASE}/archive/bad").mock(
        side_effect=[
            httpx.Response(200, content=b'{"errors": 1}'),
            httpx.Response(404, json={}),
            httpx.Response(200, json={"v": 1}),
        ]
    )
    client = stack(profiles=[cold_profile()])
    client.get(f"{BASE}/archive/bad")
    client.get(f"{BASE}/archive/bad")
    traveller.shift(10 * DAY)
    assert info(client.get(f"{BASE}/archive/bad")).cache == "miss"
    assert route.call_count == 3


def test_secrets_never_reach_the_cold_store(
    stack: Any, router: respx.Router, traveller: time_machine.Traveller, tmp_path: Path
) -> None:
    """Kept redacted like the warm tier: no secret in Location, no Set-Cookie."""
    router.get(url__startswith=f"{BASE}/archive/s").respond(
        json={"v": 1},
        headers={"set-cookie": "session=hunter2", "content-location": f"{BASE}/x?key=hunter2"},
    )
    client = stack(profiles=[cold_profile()])
    client.get(f"{BASE}/archive/s?key=hunter2", headers={"x-token": "hunter2"})
    client.close()
    assert b"hunter2" not in (tmp_path / "state" / "cold.db").read_bytes()
    if (wal := tmp_path / "state" / "cold.db-wal").exists():
        assert b"hunter2" not in wal.read_bytes()
    traveller.shift(10 * DAY)
    again = stack(profiles=[cold_profile()]).get(
        f"{BASE}/archive/s?key=hunter2", headers={"x-token": "hunter2"}
    )
    assert info(again).tier == "cold"
    assert "set-cookie" not in again.headers


def test_requests_with_cache_directives_bypass_it(
    stack: Any, routes: dict[str, respx.Route], traveller: time_machine.Traveller
) -> None:
    """``Cache-Control: no-cache`` from the caller goes past the cold store."""
    client = stack(profiles=[cold_profile()])
    client.get(f"{BASE}/archive/1")
    traveller.shift(10 * DAY)
    fresh = client.get(f"{BASE}/archive/1", headers={"cache-control": "no-cache"})
    assert info(fresh).cache == "miss"
    assert routes["archive/1"].call_count == 2


@pytest.mark.parametrize("value", [-1, 1.5, "big", True])
def test_cold_bytes_is_validated(value: object, tmp_path: Path) -> None:
    with pytest.raises(quotaflow.ConfigError, match="cold_bytes"):
        quotaflow.make_client(
            profiles=[cold_profile()], plugins=False, state_dir=tmp_path, cold_bytes=value
        )


def test_no_cold_store_without_an_immutable_rule(stack: Any, tmp_path: Path) -> None:
    """A client whose profiles mark nothing immutable makes no cold.db."""
    stack()
    assert not (tmp_path / "state" / "cold.db").exists()


def test_a_failing_rule_keeps_nothing(
    stack: Any, routes: dict[str, respx.Route], traveller: time_machine.Traveller
) -> None:
    def broken(request: httpx.Request, response: httpx.Response) -> float | None:
        raise RuntimeError("boom")

    client = stack(profiles=[api_profile(immutable=broken)])
    assert client.get(f"{BASE}/archive/1").json() == {"v": "archive/1"}
    traveller.shift(10 * DAY)
    assert info(client.get(f"{BASE}/archive/1")).cache == "miss"


# A toy archive: /tape?t=<seconds> answers the newest frame at or before t; frames
# every 10 s, so t is rounded down to 10 s; each answer says which window it covers.
def _frame(request: httpx.Request) -> httpx.Response:
    t = int(float(request.url.params["t"]))
    start = t - t % 10
    end = start + 20 if start % 40 == 0 else start + 10  # some frames last 20 s
    return httpx.Response(200, json={"start": start, "end": end})


def _normalize(request: httpx.Request) -> httpx.URL | None:
    t = request.url.params.get("t")
    if t is None:
        return None
    return request.url.copy_set_param("t", str(int(float(t)) // 10 * 10))


def _snapshot(request: httpx.Request, response: httpx.Response | None) -> Snapshot | None:
    series = str(request.url.copy_remove_param("t"))
    if response is None:
        return Snapshot(series, float(request.url.params["t"]), float(request.url.params["t"]))
    body = response.json()
    return Snapshot(series, body["start"], body["end"])


def tape_profile() -> quotaflow.ApiProfile:
    return api_profile(
        immutable=lambda request, response: math.inf,
        normalize=_normalize,
        snapshot=_snapshot,
        quota=quotaflow.Quota(10_000),
    )


def test_normalized_requests_and_windows_cost_one_call_per_frame(
    stack: Any, router: respx.Router, tmp_path: Path
) -> None:
    """Every second for 120 s: one upstream call per frame (frames at 0 and 40 and
    80 last 20 s), none on a second run in a new client."""
    route = router.get(f"{BASE}/tape").mock(side_effect=_frame)
    client = stack(profiles=[tape_profile()], hot_entries=0)
    answers = [client.get(f"{BASE}/tape?t={t}&key=k") for t in range(120)]

    frames = {(a.json()["start"], a.json()["end"]) for a in answers}
    assert len(frames) == 9  # 0-20, 20, 30, 40-60, 60, 70, 80-100, 100, 110
    assert route.call_count == 9
    assert [a.json()["start"] <= t < a.json()["end"] for t, a in enumerate(answers)] == [True] * 120
    assert {str(call.request.url.params["t"]) for call in route.calls} <= {
        str(t) for t in range(0, 120, 10)
    }

    again = stack(profiles=[tape_profile()])
    for t in range(120):
        assert info(again.get(f"{BASE}/tape?t={t}&key=k")).tier in ("cold", "memory")
    assert route.call_count == 9


def test_normalize_never_changes_origin(stack: Any, router: respx.Router) -> None:
    """A normalize rule pointing elsewhere is ignored."""
    route = router.get(f"{BASE}/x").respond(json={})
    client = stack(
        profiles=[api_profile(normalize=lambda request: httpx.URL("https://evil.test/x"))]
    )
    client.get(f"{BASE}/x")
    assert route.call_count == 1


def test_store_directly(tmp_path: Path) -> None:
    """The store on its own: stats count entries, bytes, hits and units saved."""
    store = SqliteColdStore(tmp_path / "cold.db", 100)
    response = httpx.Response(200, headers={"a": "1"})
    assert store.put("k", response, b"x" * 40, now=0.0, keep_for=math.inf, cost=7)
    assert not store.put("big", response, b"x" * 101, now=0.0, keep_for=math.inf)
    assert store.get("k", 1.0) is not None
    assert store.get("k", 2.0, touch=False) is not None
    stats = store.stats()
    assert (stats.entries, stats.size, stats.hits, stats.saved) == (1, 40, 1, 7)
    store.close()


def test_plan_prices_cold_hits_at_zero(
    router: respx.Router,
    routes: dict[str, respx.Route],
    traveller: time_machine.Traveller,
    clock: quotaflow.Clock,
    tmp_path: Path,
) -> None:
    """plan() says an answer kept cold (by key or by snapshot window) is free, and
    looking does not count as a hit."""
    router.get(f"{BASE}/archive/tape").mock(side_effect=_frame)
    with quotaflow.make_client(
        profiles=[cold_profile(normalize=_normalize, snapshot=_snapshot)],
        plugins=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
        clock=clock,
    ) as client:
        client.get(f"{BASE}/archive/1")
        client.get(f"{BASE}/archive/tape?t=40")
        traveller.shift(10 * DAY)
        planned = quotaflow.plan(
            client,
            [f"{BASE}/archive/1", f"{BASE}/live", f"{BASE}/archive/tape?t=55"],
        )
    assert [(row.fresh, row.cost) for row in planned.requests] == [
        (True, 0),
        (False, 1),
        (True, 0),
    ]
    assert planned.cost == 1
    store = SqliteColdStore(tmp_path / "cold.db", 2**20)
    assert store.stats().hits == 0
    store.close()


def test_status_shows_the_cold_store(
    stack: Any,
    routes: dict[str, respx.Route],
    traveller: time_machine.Traveller,
    tmp_path: Path,
) -> None:
    """Per profile: answers kept, their bytes, the hits and the units they saved (what
    each answer cost when fetched: x-cost 3)."""
    client = stack(profiles=[cold_profile()], hot_entries=0)
    client.get(f"{BASE}/archive/1")
    client.get(f"{BASE}/archive/2")
    traveller.shift(10 * DAY)
    for _ in range(2):
        client.get(f"{BASE}/archive/1")
    client.close()

    statuses = _cli_status.collect(tmp_path / "state", None, "quotaflow", [cold_profile()])
    (found,) = [s for s in statuses if s.profile == "api"]
    size = len(b'{"v":"archive/1"}')
    assert (found.cold_entries, found.cold_bytes, found.cold_hits, found.cold_saved) == (
        2,
        2 * size,
        2,
        6,
    )
    out = io.StringIO()
    _cli_status._plain(statuses, out)
    assert f"cold       2 answers kept ({2 * size} bytes); 2 hits saved 6 units" in out.getvalue()


# Redis: the cold store in keys without TTL under {prefix}:cold:, shared by machines.


def test_redis_cold_store(
    stack: Any,
    routes: dict[str, respx.Route],
    traveller: time_machine.Traveller,
    tmp_path: Path,
    prefix: str,
    raw: Any,
) -> None:
    """Kept in Redis without a TTL (no cold.db); another machine (its own state
    directory) is answered from it; LRU within cold_bytes; status reads it."""
    size = len(b'{"v":"archive/1"}')
    settings = {
        "profiles": [cold_profile()],
        "redis_url": REDIS_URL,
        "redis_prefix": prefix,
        "cold_bytes": 2 * size,
        "hot_entries": 0,
    }
    client = stack(**settings, state_dir=tmp_path / "one")
    client.get(f"{BASE}/archive/1")
    client.get(f"{BASE}/archive/2")
    traveller.shift(40 * DAY)
    other = stack(**settings, state_dir=tmp_path / "two")
    assert info(other.get(f"{BASE}/archive/1")).tier == "cold"
    other.get(f"{BASE}/archive/3")  # 2 is now the least recently used: it leaves

    assert info(client.get(f"{BASE}/archive/3")).tier == "cold"
    assert info(client.get(f"{BASE}/archive/2")).cache == "miss"
    assert routes["archive/1"].call_count == 1
    assert routes["archive/2"].call_count == 2
    cold = sorted(raw.scan_iter(match=f"{prefix}:cold:*"))
    assert cold
    assert all(raw.ttl(key) == -1 for key in cold)
    assert not (tmp_path / "one" / "cold.db").exists()
    assert int(raw.get(f"{prefix}:cold:size")) <= 2 * size

    statuses = _cli_status.collect(tmp_path / "one", REDIS_URL, prefix, [cold_profile()])
    (found,) = [s for s in statuses if s.profile == "api"]
    assert (found.cold_entries, found.cold_bytes, found.cold_hits) == (2, 2 * size, 2)
    assert found.cold_saved == 6


def test_redis_cold_windows(stack: Any, router: respx.Router, tmp_path: Path, prefix: str) -> None:
    """Snapshot windows in Redis: one call per frame, none from another machine."""
    route = router.get(f"{BASE}/tape").mock(side_effect=_frame)
    settings = {"profiles": [tape_profile()], "redis_url": REDIS_URL, "redis_prefix": prefix}
    client = stack(**settings, hot_entries=0, state_dir=tmp_path / "one")
    for t in range(120):
        client.get(f"{BASE}/tape?t={t}&key=k")
    assert route.call_count == 9
    other = stack(**settings, state_dir=tmp_path / "two")
    for t in range(120):
        answer = other.get(f"{BASE}/tape?t={t}&key=k")
        assert answer.json()["start"] <= t < answer.json()["end"]
    assert route.call_count == 9
