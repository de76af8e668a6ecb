"""The odds history archive off the request path: a bounded queue (oldest dropped and
counted), batched writes by a worker, and a ``close()`` bounded in time."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from quotaflow import events
from quotaflow.events import Emitter
from quotaflow_theoddsapi import _history, archived_events, samples
from quotaflow_theoddsapi._history import OddsHistory, Pending

URL = "https://api.the-odds-api.com/v4/sports/americanfootball_nfl/odds?regions=us"
SPORT = "americanfootball_nfl"
START = 1_795_000_000.0
LIVENESS = 30.0  # a guard against a hang, never a measure of speed


def _body(n: int) -> tuple[str, bytes]:
    """A body holding one event of its own: which bodies were archived shows in the file."""
    event = samples.event(SPORT, f"Home {n:03d}", f"Away {n:03d}", START + 86400, bookmakers=1)
    return event["id"], samples.odds([event])


def _fetched(body: bytes, at: float = START) -> events.Fetched:
    return events.Fetched("theoddsapi", at, URL, 200, 1, 60.0, body)


class Gate:
    """A writer that waits at a gate the test opens (a stuck writer until then), then
    hands the batch to ``then`` (the archive's own writer, or nothing)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.batches: list[list[Pending]] = []
        self.then: Callable[[Sequence[Pending]], None] | None = None

    def __call__(self, batch: Sequence[Pending]) -> None:
        self.entered.set()
        assert self.opened.wait(LIVENESS)
        self.batches.append(list(batch))
        if self.then is not None:
            self.then(batch)


@pytest.fixture
def gate() -> Iterator[Gate]:
    found = Gate()
    yield found
    found.opened.set()  # never leave a worker stuck behind a failed test


def _stuck_after_one(archive: OddsHistory, gate: Gate) -> str:
    """Queue one body and have the worker take it: the worker is then stuck in the gate."""
    first, body = _body(0)
    archive(_fetched(body))
    archive.flush(timeout=0)
    assert gate.entered.wait(LIVENESS)
    return first


def test_a_burst_keeps_the_newest_within_the_bound_and_counts_the_rest(
    tmp_path: Path, gate: Gate
) -> None:
    """Behind a stuck writer, 100 bodies queue: at most max_pending wait (the newest),
    the others are dropped and counted, in the process and then in the file; what was
    kept is archived once the writer moves again."""
    archive = OddsHistory(tmp_path, now=lambda: START, max_pending=8, write=gate)
    gate.then = archive._archive
    first = _stuck_after_one(archive, gate)
    ids = []
    for n in range(1, 101):
        event_id, body = _body(n)
        ids.append(event_id)
        archive(_fetched(body, START + n))

    stats = archive.stats()
    assert stats.queued == 8
    assert stats.dropped == 100 - 8
    assert stats.queued_bytes <= archive.max_pending_bytes

    gate.opened.set()
    archive.close()
    assert [len(batch) for batch in gate.batches] == [1, 8]
    assert [at for _, at, _, _ in gate.batches[1]] == [START + n for n in range(93, 101)]
    assert {event.event_id for event in archived_events(tmp_path)} == {first, *ids[-8:]}
    assert archive.stats().dropped == 92
    assert _history.dropped_bodies(tmp_path) == 92


def test_the_byte_bound_holds_too(tmp_path: Path, gate: Gate) -> None:
    """Bodies past max_pending_bytes drop the oldest first; a body larger than the whole
    bound is dropped itself. Queued bytes never pass the bound."""
    size = len(_body(1)[1])
    archive = OddsHistory(tmp_path, max_pending_bytes=3 * size + 10, write=gate)
    _stuck_after_one(archive, gate)
    for n in range(1, 51):
        archive(_fetched(_body(n)[1]))
        assert archive.stats().queued_bytes <= archive.max_pending_bytes
    assert archive.stats().queued == 3
    archive(_fetched(b"[" + b" " * (4 * size) + b"]"))
    stats = archive.stats()
    assert (stats.queued, stats.queued_bytes, stats.dropped) == (0, 0, 47 + 3 + 1)
    gate.opened.set()
    archive.close()


def test_close_returns_by_its_deadline_with_a_stuck_writer(
    tmp_path: Path, gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    """A writer that never returns cannot hold close(): what is still queued at the
    deadline is dropped, counted and reported in one warning."""
    archive = OddsHistory(tmp_path, write=gate, close_timeout=0.05)
    _stuck_after_one(archive, gate)
    for n in range(1, 4):
        archive(_fetched(_body(n)[1]))

    closing = threading.Thread(target=archive.close)
    closing.start()
    closing.join(LIVENESS)
    assert not closing.is_alive()
    assert archive.stats().dropped == 3
    assert archive.stats().queued == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "3 bodies dropped, 1 still being written" in warnings[0]
    archive(_fetched(_body(9)[1]))  # after close: dropped, never queued
    assert archive.stats().dropped == 4
    assert gate.batches == []  # the stuck batch is still stuck; nothing else was taken


def test_nothing_is_lost_in_the_normal_case_and_writes_are_batched(tmp_path: Path) -> None:
    """200 bodies within the bounds: every one archived, none dropped, written in batches
    of FLUSH_BODIES or more (the last one excepted), not one transaction per answer."""
    batches: list[int] = []
    archive: OddsHistory

    def counted(batch: Sequence[Pending]) -> None:
        batches.append(len(batch))
        archive._archive(batch)

    archive = OddsHistory(tmp_path, now=lambda: START, write=counted)
    ids = []
    for n in range(200):
        event_id, body = _body(n)
        ids.append(event_id)
        archive(_fetched(body, START + n))
    archive.close()

    assert {event.event_id for event in archived_events(tmp_path)} == set(ids)
    stats = archive.stats()
    assert (stats.dropped, stats.archived, stats.queued) == (0, 200, 0)
    assert sum(batches) == 200
    assert all(size >= _history.FLUSH_BODIES for size in batches[:-1])
    assert _history.dropped_bodies(tmp_path) == 0


def test_a_repeated_body_is_not_parsed_again(tmp_path: Path) -> None:
    """The same bytes again for the same URL, nothing written since: skipped unparsed.
    A move in between (another URL moving the same event) makes it count again."""
    event = samples.event(SPORT, "Chiefs", "Bills", START + 86400, bookmakers=1)
    same = samples.odds([event])
    event["bookmakers"][0]["markets"][0]["outcomes"][0]["price"] = 9.5
    moved = samples.odds([event])
    other = URL.replace("?regions=us", "?regions=us&markets=h2h")
    archive = OddsHistory(tmp_path, now=lambda: START + 100)
    for at, url, body in ((1, URL, same), (2, URL, same), (3, other, moved), (4, URL, same)):
        archive(events.Fetched("theoddsapi", START + at, url, 200, 1, 60.0, body))
        assert archive.flush(timeout=LIVENESS)
    archive.close()
    stats = archive.stats()
    assert (stats.archived, stats.unchanged) == (4, 1)
    rows = _history.history(event["id"], tmp_path)
    moves = _history.movement(rows)
    home = moves[("draftkings", "h2h", "Chiefs")]
    assert [(at - START, price) for at, price, _ in home][1:] == [(3, 9.5), (4, home[0][1])]


def test_the_archive_lets_hits_be_counted_without_an_event(tmp_path: Path) -> None:
    """A subscriber with a hit() lets the stack count a hit without building an event;
    the archive's does nothing and opens nothing."""
    archive = OddsHistory(tmp_path)
    emitter = Emitter([archive])
    emitter.hit("theoddsapi", START, URL, 1)
    assert emitter._hit_counters is not None
    archive.close()
    assert not (tmp_path / _history.DB_NAME).exists()


def test_only_events_that_moved_are_read_and_a_move_back_is_kept(tmp_path: Path) -> None:
    """Three games; one moves, then another URL (compact JSON, as the API writes it)
    moves it back, then the first answer comes again: every change is a row, in order,
    and the games that never moved keep their first row only."""
    games = [
        samples.event(SPORT, f"Home {n}", f"Away {n}", START + 86400, bookmakers=2)
        for n in range(3)
    ]
    first = samples.odds(games)
    price = games[1]["bookmakers"][0]["markets"][0]["outcomes"][0]["price"]
    games[1]["bookmakers"][0]["markets"][0]["outcomes"][0]["price"] = 4.5
    moved = samples.odds(games)
    games[1]["bookmakers"][0]["markets"][0]["outcomes"][0]["price"] = price
    back = json.dumps(games, separators=(",", ":")).encode()
    other = URL + "&markets=h2h"
    archive = OddsHistory(tmp_path, now=lambda: START + 100)
    answers = [(URL, first), (URL, moved), (other, back), (URL, moved), (URL, moved)]
    for at, (url, body) in enumerate(answers, start=1):
        archive(events.Fetched("theoddsapi", START + at, url, 200, 1, 60.0, body))
        if at % 2:
            assert archive.flush(timeout=LIVENESS)  # some in one batch, some across
    archive.close()

    home = ("draftkings", "h2h", "Home 1")
    moves = _history.movement(_history.history(games[1]["id"], tmp_path))
    assert [(at - START, value) for at, value, _ in moves[home]] == [
        (1, price),
        (2, 4.5),
        (3, price),
        (4, 4.5),
    ]
    assert all(len(changes) == 1 for key, changes in moves.items() if key != home)
    for game in (games[0], games[2]):
        rows = _history.history(game["id"], tmp_path)
        assert {row.fetched_at for row in rows} == {START + 1}
    assert archive.stats().rows == 3 * 2 * 2 + 3


def test_an_idle_worker_ends_and_the_next_answer_starts_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client never closed leaves no thread behind once idle; nothing is lost."""
    monkeypatch.setattr(_history, "IDLE_SECONDS", 0.01)
    archive = OddsHistory(tmp_path, now=lambda: START)
    first, body = _body(1)
    archive(_fetched(body))
    worker = archive._worker
    assert worker is not None
    assert archive.flush(timeout=LIVENESS)
    worker.join(LIVENESS)
    assert not worker.is_alive()
    assert archive._worker is None
    second, body = _body(2)
    archive(_fetched(body, START + 1))
    assert archive._worker is not None
    archive.close()
    assert {event.event_id for event in archived_events(tmp_path)} == {first, second}
