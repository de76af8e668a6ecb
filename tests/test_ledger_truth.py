"""The ledger believes only answers that come from the API now (issue 14): quota and
window fields on answers served from the cache are not a new reading."""

from __future__ import annotations

import io
import os

import httpx
import pytest
import respx

import quotaflow
from quotaflow import (
    Priority,
    QuotaExhausted,
    QuotaReading,
    WindowHeaders,
    _cli_status,
    _dashboard,
)
from quotaflow._state._db import StateDB
from quotaflow._state._sqlite import SqliteLedger

from .conftest import BASE, api_profile, info
from .stub_server import REDIS_URL

URL = f"{BASE}/odds"
OTHER = f"{BASE}/scores"


def test_a_cached_answers_quota_fields_never_update_the_ledger(
    stack, router: respx.Router, traveller
) -> None:
    """IETF RateLimit draft: fields on a stored answer describe the moment it was
    received. A hit, then a stale answer, both carrying 'x-remaining: 90', report the
    ledger's 50 learned since, and leave it there."""
    odds = router.get(URL).respond(
        200, json={"p": 1}, headers={"x-remaining": "90", "x-used": "10", "x-cost": "1"}
    )
    scores = router.get(OTHER).respond(
        200, json={"s": 1}, headers={"x-remaining": "50", "x-used": "50", "x-cost": "1"}
    )
    client = stack()

    assert info(client.get(URL)).remaining == 90
    assert info(client.get(OTHER)).remaining == 50
    hit = client.get(URL)
    traveller.shift(61)
    odds.mock(side_effect=httpx.ConnectError("down"))
    stale = client.get(URL)
    scores.respond(200, json={"s": 2}, headers={"x-cost": "1"})
    after = client.get(f"{OTHER}?fresh=1")

    assert (odds.call_count, scores.call_count) == (2, 2)
    assert hit.headers["x-remaining"] == "90"
    assert info(hit).cache == "hit"
    assert info(hit).remaining == 50
    assert stale.headers["x-remaining"] == "90"
    assert info(stale).cache == "stale"
    assert info(stale).remaining == 50
    # The ledger went on from 50, not from 90: the cached fields were never read.
    assert info(after).remaining == 49


def test_a_cached_answers_window_fields_never_hold_the_profile(
    stack, router: respx.Router, traveller, sleeps
) -> None:
    """A stored answer saying the short window is spent (left 0, reset in 5 s) held
    the profile once, when it came; served again from the cache it holds nothing."""
    reader = WindowHeaders(remaining="x-window-left", reset="x-window-reset")
    router.get(URL).respond(
        200, json={"p": 1}, headers={"x-window-left": "0", "x-window-reset": "5"}
    )
    scores = router.get(OTHER).respond(200, json={"s": 1})
    client = stack(profiles=[api_profile(read_window=reader)])
    client.get(URL)
    traveller.shift(10)
    sleeps.clear()

    hits = [client.get(URL) for _ in range(3)]
    client.get(OTHER)

    assert {info(h).cache for h in hits} == {"hit"}
    assert scores.call_count == 1
    assert sleeps == []


def _corrupt(state) -> None:
    target = state / "state.db"
    target.write_bytes(os.urandom(8192))
    for suffix in ("-wal", "-shm"):
        target.with_name("state.db" + suffix).unlink(missing_ok=True)


def test_a_lost_ledger_is_unknown_until_the_free_probe_syncs_it(
    tmp_path, router: respx.Router, clock
) -> None:
    """state.db corrupted: the remaining is unknown (None), not the plan's 100; the
    profile's free probe is sent once, with the credential only, and syncs it."""
    state = tmp_path / "state"
    profile = api_profile(probe="/sports")
    odds = router.get(url__startswith=URL).respond(
        200, json={"p": 1}, headers={"x-remaining": "90", "x-used": "10", "x-cost": "1"}
    )
    probe = router.get(f"{BASE}/sports").respond(
        200, json=[], headers={"x-remaining": "42", "x-used": "58", "x-cost": "0"}
    )
    settings = {
        "profiles": [profile],
        "plugins": False,
        "state_dir": state,
        "transport": httpx.MockTransport(router.handler),
        "clock": clock,
    }
    with quotaflow.make_client(**settings) as client:
        assert info(client.get(f"{URL}?key=k1")).remaining == 90
    _corrupt(state)
    odds.respond(200, json={"p": 2}, headers={"x-cost": "1"})  # no count on these

    with quotaflow.make_client(**settings) as client:
        ledger = SqliteLedger(StateDB(state / "state.db"))
        quota = ledger.snapshot(profile, now=clock.time())
        assert quota is not None
        assert quota.unknown
        assert ledger.known_remaining(profile) is None
        first = client.get(f"{URL}?key=k1&a=1")
        second = client.get(f"{URL}?key=k1&a=2")

    assert probe.call_count == 1
    assert str(probe.calls[0].request.url) == f"{BASE}/sports?key=k1"
    assert odds.call_count == 3
    assert info(first).remaining == 41  # the probe's 42, less this call's 1
    assert info(second).remaining == 40


def test_a_lost_ledger_without_a_probe_stays_unknown_until_a_count_comes(
    tmp_path, router: respx.Router, clock
) -> None:
    """No probe: answers without the API's count leave it unknown (never 99 of 100);
    the first answer with it syncs the ledger."""
    state = tmp_path / "state"
    route = router.get(url__startswith=URL).respond(200, json={"p": 1}, headers={"x-cost": "1"})
    settings = {
        "profiles": [api_profile()],
        "plugins": False,
        "state_dir": state,
        "transport": httpx.MockTransport(router.handler),
        "clock": clock,
    }
    with quotaflow.make_client(**settings) as client:
        client.get(f"{URL}?a=0")
    _corrupt(state)

    with quotaflow.make_client(**settings) as client:
        blind = client.get(f"{URL}?a=1")
        route.respond(200, json={"p": 1}, headers={"x-remaining": "30", "x-used": "70"})
        synced = client.get(f"{URL}?a=2")

    assert route.call_count == 3
    assert info(blind).remaining is None
    assert info(synced).remaining == 30


def test_status_and_dashboard_say_unknown_for_a_lost_ledger(
    tmp_path, router: respx.Router, clock
) -> None:
    """After the rebuild, before any answer: ``status`` and the dashboard show the
    remaining as unknown (not 100 of 100, not 99), and no forecast."""
    state = tmp_path / "state"
    profile = api_profile()
    router.get(url__startswith=URL).respond(
        200, json={}, headers={"x-remaining": "60", "x-used": "40"}
    )
    settings = {
        "profiles": [profile],
        "plugins": False,
        "state_dir": state,
        "transport": httpx.MockTransport(router.handler),
        "clock": clock,
    }
    with quotaflow.make_client(**settings) as client:
        client.get(URL)
    before = _cli_status.collect(state, None, "quotaflow", [profile])
    _corrupt(state)
    with quotaflow.make_client(**settings):
        pass  # the file is found corrupt, set aside and rebuilt

    (found,) = [
        s for s in _cli_status.collect(state, None, "quotaflow", [profile]) if s.profile == "api"
    ]
    out = io.StringIO()
    _cli_status._plain([found], out)
    page = _dashboard.render_page([found], clock.time())

    assert [s.remaining for s in before if s.profile == "api"] == [60]
    assert (found.total, found.remaining, found.used) == (100, None, None)
    assert found.forecast_at_reset is None
    assert "quota      unknown of 100 left" in out.getvalue()
    assert '<dd data-field="remaining">unknown</dd>' in page


def test_an_emptied_redis_is_unknown_until_the_probe_syncs_it(
    tmp_path, router: respx.Router, clock, prefix: str, raw
) -> None:
    """Redis lost every key (restarted without persistence): a process starting now
    finds the quota unknown, not whole; the free probe syncs it once."""
    profile = api_profile(probe="/sports")
    odds = router.get(url__startswith=URL).respond(
        200, json={}, headers={"x-remaining": "90", "x-used": "10"}
    )
    probe = router.get(f"{BASE}/sports").respond(
        200, json=[], headers={"x-remaining": "42", "x-used": "58"}
    )
    settings = {
        "profiles": [profile],
        "plugins": False,
        "state_dir": tmp_path / "state",
        "transport": httpx.MockTransport(router.handler),
        "clock": clock,
        "redis_url": REDIS_URL,
        "redis_prefix": prefix,
    }
    with quotaflow.make_client(**settings) as client:
        assert info(client.get(URL)).remaining == 90
    for key in raw.scan_iter(match=f"{prefix}:*"):
        raw.delete(key)
    odds.respond(200, json={}, headers={"x-cost": "1"})

    with quotaflow.make_client(**settings) as client:
        (status,) = [
            s
            for s in _cli_status.collect(tmp_path / "state", REDIS_URL, prefix, [profile])
            if s.profile == "api"
        ]
        synced = client.get(f"{URL}?a=1")

    assert status.remaining is None
    assert probe.call_count == 1
    assert odds.call_count == 2
    assert info(synced).remaining == 41


def test_while_unknown_non_critical_requests_go_one_at_a_time(tmp_path) -> None:
    """A lost ledger, no answer yet: a NORMAL request may go (its answer brings the
    count), a second one waits for it (refused, saying why); a CRITICAL one still goes.
    Once the count comes, the usual rules again."""
    target = tmp_path / "state.db"
    target.write_bytes(os.urandom(8192))  # found corrupt, set aside: lost
    ledger = SqliteLedger(StateDB(target))
    profile = api_profile()
    now = 1_796_000_000.0

    first = ledger.reserve(profile, Priority.NORMAL, 1, now)
    with pytest.raises(QuotaExhausted, match="unknown until an answer reports it"):
        ledger.reserve(profile, Priority.NORMAL, 1, now)
    critical = ledger.reserve(profile, Priority.CRITICAL, 1, now)
    ledger.settle(profile, first, 1, QuotaReading(remaining=50, used=50), now)
    again = ledger.reserve(profile, Priority.NORMAL, 1, now)

    assert critical is not None
    assert again is not None
    assert ledger.known_remaining(profile) == 50
