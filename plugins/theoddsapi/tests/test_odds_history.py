"""The odds history archive, started by the installed plugin for every client."""

from __future__ import annotations

import copy
import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import time_machine

import quotaflow
from quotaflow_theoddsapi import _history, history, movement, samples

URL = "https://api.the-odds-api.com/v4/sports/americanfootball_nfl/odds"
SPORT = "americanfootball_nfl"
START = datetime(2026, 11, 29, 13, tzinfo=UTC).timestamp()
MINUTE, DAY = 60, 86400


@pytest.fixture
def traveller() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(datetime(2026, 11, 29, 13, tzinfo=UTC), tick=False) as traveller:
        yield traveller


def _event(kick_off: float = START + 5 * 3600) -> dict[str, Any]:
    return samples.event(SPORT, "Kansas City Chiefs", "Buffalo Bills", kick_off, bookmakers=2)


def _moved(event: dict[str, Any], price: float) -> dict[str, Any]:
    moved = copy.deepcopy(event)
    moved["bookmakers"][0]["markets"][0]["outcomes"][0]["price"] = price
    return moved


def _answer(body: bytes) -> httpx.Response:
    return samples.response(body, used=1, remaining=499, last=1)


def _fetch(
    tmp_path: Path,
    router: respx.Router,
    traveller: time_machine.Traveller,
    bodies: list[bytes],
    every: float = 10 * MINUTE,
) -> respx.Route:
    """One client fetching the odds once per body, ``every`` seconds apart; then closed."""
    route = router.get(URL).mock(side_effect=[_answer(body) for body in bodies])
    client = quotaflow.make_client(
        plugins=True,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
        clock=quotaflow.Clock(sleep=traveller.shift),
    )
    with client:
        for index in range(len(bodies)):
            if index:
                traveller.shift(every)
            assert client.get(URL, params={"apiKey": "k"}).status_code == 200
    return route


def test_distinct_snapshots_and_movement(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller
) -> None:
    """Three fetches across expiry, prices changing once: only the change is stored again."""
    event = _event()
    before = event["bookmakers"][0]["markets"][0]["outcomes"][0]["price"]
    first, moved = samples.odds([event]), samples.odds([_moved(event, 1.85)])
    route = router.get(URL).mock(side_effect=[_answer(first), _answer(first), _answer(moved)])
    client = quotaflow.make_client(
        plugins=True,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
        clock=quotaflow.Clock(sleep=traveller.shift),
    )
    with client:
        for step in (0, MINUTE, 9 * MINUTE, 10 * MINUTE):  # the second one is a cache hit
            traveller.shift(step)
            client.get(URL, params={"apiKey": "k"})
    assert route.call_count == 3

    rows = history(event["id"], tmp_path)
    assert len(rows) == 2 * 2 + 1  # 2 bookmakers x 2 outcomes, then the one move
    assert rows == sorted(rows, key=lambda r: (r.bookmaker, r.market, r.outcome, r.fetched_at))
    assert {row.fetched_at for row in rows} == {START, START + 20 * MINUTE}
    assert {(row.sport, row.market, row.point) for row in rows} == {(SPORT, "h2h", None)}
    assert rows[0].commence_time == event["commence_time"]
    assert rows[0].last_update == event["bookmakers"][0]["last_update"]

    moves = movement(rows)
    assert moves[("draftkings", "h2h", "Kansas City Chiefs")] == [
        (START, before, None),
        (START + 20 * MINUTE, 1.85, None),
    ]
    assert all(len(changes) == 1 for key, changes in moves.items() if key[0] != "draftkings")
    assert history("0" * 32, tmp_path) == []


def test_unparseable_bodies_are_skipped(
    tmp_path: Path,
    router: respx.Router,
    traveller: time_machine.Traveller,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Bodies of another shape are skipped at debug level; the good ones are kept."""
    caplog.set_level(logging.DEBUG, logger="quotaflow")
    event = _event()
    _fetch(tmp_path, router, traveller, [b"not json", b'{"other": "shape"}', samples.odds([event])])
    assert len(history(event["id"], tmp_path)) == 4
    skipped = [r for r in caplog.records if "skips an unreadable" in r.getMessage()]
    assert len(skipped) == 2
    assert all(r.levelno == logging.DEBUG for r in skipped)


def test_retention_deletes_old_rows(
    tmp_path: Path,
    router: respx.Router,
    traveller: time_machine.Traveller,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With 1 day of retention, rows two days old go, and the same prices are stored anew."""
    monkeypatch.setenv("QUOTAFLOW_ODDS_HISTORY_DAYS", "1")
    event = _event(START + 5 * DAY)
    _fetch(tmp_path, router, traveller, [samples.odds([event])])
    assert {row.fetched_at for row in history(event["id"], tmp_path)} == {START}
    traveller.shift(2 * DAY)
    _fetch(tmp_path, router, traveller, [samples.odds([event])])
    assert {row.fetched_at for row in history(event["id"], tmp_path)} == {START + 2 * DAY}


def test_zero_days_disables_the_archive(
    tmp_path: Path,
    router: respx.Router,
    traveller: time_machine.Traveller,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QUOTAFLOW_ODDS_HISTORY_DAYS", "0")
    event = _event()
    _fetch(tmp_path, router, traveller, [samples.odds([event])])
    assert not (tmp_path / "odds_history.db").exists()
    assert history(event["id"], tmp_path) == []
    monkeypatch.setenv("QUOTAFLOW_ODDS_HISTORY_DAYS", "soon")
    with pytest.raises(quotaflow.ConfigError, match="QUOTAFLOW_ODDS_HISTORY_DAYS"):
        quotaflow.make_client(plugins=True, state_dir=tmp_path)


def test_busy_file_loses_a_batch_with_one_warning(
    tmp_path: Path,
    router: respx.Router,
    traveller: time_machine.Traveller,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A file locked by another writer costs the batch, never the request."""
    monkeypatch.setattr(_history, "BUSY_TIMEOUT", 0.05)
    event = _event()
    _fetch(tmp_path, router, traveller, [samples.odds([event])])
    locker = sqlite3.connect(tmp_path / "odds_history.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        traveller.shift(10 * MINUTE)
        _fetch(tmp_path, router, traveller, [samples.odds([_moved(event, 9.5)])])
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert {row.fetched_at for row in history(event["id"], tmp_path)} == {START}
