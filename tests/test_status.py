"""quotaflow status: counts kept by the built-in subscriber, read back per profile."""

from __future__ import annotations

import builtins
import json
import sqlite3

import httpx
import pytest

import quotaflow
from quotaflow import Quota, Rate, _cli_status
from quotaflow._cli import main

from .conftest import BASE, api_profile

URL = f"{BASE}/odds"


def status(capsys, state) -> list[dict]:
    assert main(["status", "--state-dir", str(state), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_status_counts_what_happened_today(stack, router, traveller, tmp_path, capsys) -> None:
    """Hits, misses, stale, refused, saved units, quota, tokens and the last error."""
    route = router.get(url__startswith=URL).respond(200, json={}, headers={"x-cost": "2"})
    profile = api_profile(
        quota=Quota(10), cost=lambda request: 2, rates=(Rate(5, per=1.0, burst=5),)
    )
    client = stack(profiles=[profile])
    client.get(URL)
    client.get(URL)
    client.get(URL)
    traveller.shift(61)
    route.mock(side_effect=httpx.ConnectError("down"))
    client.get(URL)
    route.mock(side_effect=None, return_value=httpx.Response(200, json={}, headers={"x-cost": "2"}))
    for n in range(3):
        client.get(f"{URL}/{n}")
    with pytest.raises(quotaflow.QuotaExhausted):
        client.get(f"{URL}/refused")
    client.close()

    statuses = _cli_status.collect(tmp_path / "state", None, "quotaflow", profiles=[profile])
    (found,) = [s.as_dict() for s in statuses if s.profile == "api"]
    (unknown,) = [s for s in status(capsys, tmp_path / "state") if s["profile"] == "api"]

    assert found["today"] == {
        "hits": 2,
        "misses": 4,
        "revalidated": 0,
        "stale": 1,
        "refused": 1,
        "saved": 4,
        "spent": 8,
    }
    assert (found["total"], found["used"], found["remaining"]) == (10, 8, 2)
    assert found["resets_at"] == "2026-12-01T00:00:00Z"
    assert found["last_error"] == "ConnectError"
    assert found["circuit"] == "closed"
    assert found["tokens"] == 1  # five in the burst, four spent within a second
    # Without the profile installed, the CLI still shows what the state knows.
    assert (unknown["today"], unknown["remaining"]) == (found["today"], 2)


def test_hits_are_counted_without_a_write_each(stack, router, tmp_path) -> None:
    """Counts wait in memory (a batch every 5 s of traffic), and are written at close."""
    router.get(URL).respond(200, json={})
    client = stack()
    for _ in range(50):
        client.get(URL)

    with sqlite3.connect(tmp_path / "state" / "state.db") as db:
        before = db.execute("SELECT COUNT(*) FROM counters").fetchone()[0]
    client.close()
    with sqlite3.connect(tmp_path / "state" / "state.db") as db:
        hits, misses = db.execute("SELECT hits, misses FROM counters").fetchone()

    assert before == 0
    assert (hits, misses) == (49, 1)


def test_status_without_rich_prints_plain_text(tmp_path, capsys, monkeypatch) -> None:
    """The cli extra is optional: without rich the same facts come as plain lines."""
    real_import = builtins.__import__

    def no_rich(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name.startswith("rich"):
            raise ImportError("no rich here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_rich)
    assert main(["status", "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out

    assert "theoddsapi" in out
    assert "quota      0/500 used, 500 left" in out


def test_status_table(tmp_path, capsys) -> None:
    """The rich table names every installed profile with its quota."""
    assert main(["status", "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out

    assert "quotaflow status" in out
    assert "theoddsapi" in out
    assert "0/500" in out
