"""``quotaflow history``: an event's odds movement, from the theoddsapi plugin's archive."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from quotaflow import events
from quotaflow._cli import main

START = datetime(2026, 11, 29, 13, tzinfo=UTC).timestamp()
URL = "https://api.the-odds-api.com/v4/sports/americanfootball_nfl/odds?regions=us"


@pytest.fixture
def event_id(tmp_path: Path) -> str:
    """An archive in tmp_path where DraftKings' Chiefs price moves twice."""
    theoddsapi = pytest.importorskip("quotaflow_theoddsapi")
    samples = theoddsapi.samples
    archive = theoddsapi.OddsHistory(tmp_path, now=lambda: START + 3600)
    event = samples.event("americanfootball_nfl", "Kansas City Chiefs", "Buffalo Bills", START)
    event["bookmakers"] = event["bookmakers"][:1]
    for minutes, price in ((0, 1.91), (10, 1.87), (20, 1.87), (30, 1.85)):
        event["bookmakers"][0]["markets"][0]["outcomes"][0]["price"] = price
        body = samples.odds([event])
        archive(events.Fetched("theoddsapi", START + 60 * minutes, URL, 200, 1, 60.0, body))
    archive.close()
    return str(event["id"])


def test_prints_the_movement(
    tmp_path: Path, event_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", event_id, "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (
        "draftkings  h2h  Kansas City Chiefs  1.91 (13:00) -> 1.87 (13:10) -> 1.85 (13:30)" in out
    )
    assert "draftkings  h2h  Buffalo Bills     " in out
    assert main(["history", "0" * 32, "--state-dir", str(tmp_path)]) == 1


def test_prints_json(tmp_path: Path, event_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", event_id, "--state-dir", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["event_id"] == event_id
    chiefs = next(m for m in doc["movement"] if m["outcome"] == "Kansas City Chiefs")
    assert chiefs["bookmaker"] == "draftkings"
    assert chiefs["market"] == "h2h"
    assert [(c["at"][11:16], c["price"], c["point"]) for c in chiefs["changes"]] == [
        ("13:00", 1.91, None),
        ("13:10", 1.87, None),
        ("13:30", 1.85, None),
    ]


def test_names_the_missing_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "quotaflow_theoddsapi", None)  # import fails
    assert main(["history", "0" * 32, "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert "quotaflow-theoddsapi" in err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--help"]) == 0
    assert "EVENT_ID" in capsys.readouterr().out
