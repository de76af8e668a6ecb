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
    samples = pytest.importorskip("quotaflow_theoddsapi.samples")
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


@pytest.fixture
def archive(tmp_path: Path) -> dict[str, str]:
    """Three events archived in tmp_path: two NFL games stored on 11-29, an NBA game
    stored on 11-30. Their ids by name."""
    theoddsapi = pytest.importorskip("quotaflow_theoddsapi")
    samples = pytest.importorskip("quotaflow_theoddsapi.samples")
    archive = theoddsapi.OddsHistory(tmp_path, now=lambda: START + 86400)
    nfl = [
        samples.event("americanfootball_nfl", "Kansas City Chiefs", "Buffalo Bills", START),
        samples.event("americanfootball_nfl", "Green Bay Packers", "Detroit Lions", START + 7200),
    ]
    nba = samples.event("basketball_nba", "Boston Celtics", "Miami Heat", START + 86400)
    archive(events.Fetched("theoddsapi", START, URL, 200, 2, 60.0, samples.odds(nfl)))
    nba_url = URL.replace("americanfootball_nfl", "basketball_nba")
    fetched = events.Fetched(
        "theoddsapi", START + 86000, nba_url, 200, 1, 60.0, samples.odds([nba])
    )
    archive(fetched)
    archive.close()
    return {"chiefs": nfl[0]["id"], "packers": nfl[1]["id"], "celtics": nba["id"]}


def test_lists_the_archived_events(
    tmp_path: Path, archive: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Without EVENT_ID: every archived event by kick-off, with its sport and kick-off."""
    assert main(["history", "--state-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["event", "sport", "kick-off"]
    rows = [line.split() for line in lines[1:-1]]
    assert [row[0] for row in rows] == [archive["chiefs"], archive["packers"], archive["celtics"]]
    assert rows[0][1:3] == ["americanfootball_nfl", "2026-11-29T13:00:00Z"]
    assert rows[2][1:3] == ["basketball_nba", "2026-11-30T13:00:00Z"]
    assert rows[2][3:6] == ["11-30", "12:53", ".."]
    assert lines[-1].startswith("3 events;")
    assert main(["history", "--sport", "basketball_nba", "--state-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("1 event;")


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (["--sport", "americanfootball_nfl"], ["chiefs", "packers"]),
        (["--sport", "basketball"], ["celtics"]),  # a group of sports
        (["--sport", "basket"], []),  # not a whole group name
        (["--since", "2026-11-30"], ["celtics"]),
        (["--since", "2026-11-29T12:59"], ["chiefs", "packers", "celtics"]),
        (["--since", "2026-11-29T14:00+01:00"], ["chiefs", "packers", "celtics"]),
        (["--since", "2026-11-29T13:00:01"], ["celtics"]),
        (["--sport", "americanfootball_nfl", "--since", "2026-11-30"], []),
    ],
)
def test_lists_with_filters_as_json(
    tmp_path: Path,
    archive: dict[str, str],
    filters: list[str],
    expected: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--sport (a key or a group) and --since (when the odds were stored, UTC unless the
    time says otherwise); nothing found is exit 1 with an empty list and one line why."""
    code = main(["history", "--state-dir", str(tmp_path), "--json", *filters])
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert [event["event_id"] for event in doc] == [archive[name] for name in expected]
    assert code == (0 if expected else 1)
    if not expected:
        assert captured.err == "quotaflow history: no archived events matching --sport/--since\n"
    if expected == ["celtics"]:
        assert doc[0] == {
            "event_id": archive["celtics"],
            "sport": "basketball_nba",
            "commence_time": "2026-11-30T13:00:00Z",
            "first_fetched": "2026-11-30T12:53:20Z",
            "last_fetched": "2026-11-30T12:53:20Z",
            "changes": 2 * doc[0]["bookmakers"],  # h2h: two outcomes a bookmaker
            "bookmakers": doc[0]["bookmakers"],
        }
        assert doc[0]["bookmakers"] > 1


def test_list_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A --since that is no time, or filters with an EVENT_ID, are usage errors (2)."""
    assert main(["history", "--since", "yesterday", "--state-dir", str(tmp_path)]) == 2
    assert "2026-11-29T13:00" in capsys.readouterr().err
    assert main(["history", "0" * 32, "--sport", "basketball"]) == 2
    assert "without an EVENT_ID" in capsys.readouterr().err


def test_no_archive_lists_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No odds_history.db yet: one line, exit 1, and no file created."""
    pytest.importorskip("quotaflow_theoddsapi")
    assert main(["history", "--state-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == "quotaflow history: no archived events\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [[], ["0" * 32], ["--json"], ["0" * 32, "--json"]])
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_archive_is_one_line(
    tmp_path: Path,
    archive: dict[str, str],
    argv: list[str],
    damage: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A damaged odds_history.db prints one clear line and exits 1, never a traceback."""
    path = tmp_path / "odds_history.db"
    for extra in ("-wal", "-shm"):
        path.with_name(path.name + extra).unlink(missing_ok=True)
    if damage == "garbage":
        path.write_bytes(b"this is not a database, not even close " * 100)
    else:
        path.write_bytes(path.read_bytes()[:100] + b"\0" * 4000)
    assert main(["history", *argv, "--state-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"quotaflow history: cannot read {path.resolve()}: ")
