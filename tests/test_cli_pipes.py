"""A reader that closes the pipe early (``quotaflow ... | head``) ends the command quietly.

Each case runs the installed ``quotaflow`` script in a real process whose standard output
is a pipe with its reading end already closed, so the first write fails with EPIPE,
every time (no race with a reader that might still be reading).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from quotaflow import events

SCRIPT = Path(sys.executable).with_name("quotaflow")
START = datetime(2026, 11, 29, 13, tzinfo=UTC).timestamp()
URL = "https://api.the-odds-api.com/v4/sports/americanfootball_nfl/odds?regions=us"


def run_into_closed_pipe(argv: list[str], state: Path) -> subprocess.CompletedProcess[bytes]:
    """Run ``quotaflow *argv`` writing into a pipe nobody reads any more."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [str(SCRIPT), *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env={**os.environ, "QUOTAFLOW_HOME": str(state)},
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state directory holding one archived NFL event."""
    theoddsapi = pytest.importorskip("quotaflow_theoddsapi")
    pytest.importorskip("quotaflow_theoddsapi.samples")
    archive = theoddsapi.OddsHistory(tmp_path, now=lambda: START)
    event = theoddsapi.samples.event("americanfootball_nfl", "Chiefs", "Bills", START)
    body = theoddsapi.samples.odds([event])
    archive(events.Fetched("theoddsapi", START, URL, 200, 1, 60.0, body))
    archive.close()
    (tmp_path / "urls.txt").write_text(URL + "\n")
    (tmp_path / "event").write_text(str(event["id"]))
    return tmp_path


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--json"],
        ["status"],
        ["history", "EVENT"],
        ["history", "EVENT", "--json"],
        ["history"],
        ["history", "--json"],
        ["plan", "URLS"],
        ["plan", "URLS", "--json"],
    ],
    ids=" ".join,
)
def test_no_traceback_on_a_closed_pipe(argv: list[str], state: Path) -> None:
    """No BrokenPipeError traceback, nothing on stderr, exit 0: the reader chose to stop,
    which is no error."""
    event_id = (state / "event").read_text()
    argv = [
        event_id if a == "EVENT" else str(state / "urls.txt") if a == "URLS" else a for a in argv
    ]
    done = run_into_closed_pipe([*argv, "--state-dir", str(state)], state)
    assert done.stderr == b""
    assert done.returncode == 0


def test_the_pipe_really_was_closed(state: Path) -> None:
    """The same command without the handling would have failed: Python's own print does."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-c", "print('x' * 100)"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert b"BrokenPipeError" in done.stderr


def test_a_reader_that_stops_after_one_line(tmp_path: Path) -> None:
    """``quotaflow history | head -1`` for real: more output than a pipe holds, the reader
    takes one line and closes its end while the command is still writing."""
    theoddsapi = pytest.importorskip("quotaflow_theoddsapi")
    samples = pytest.importorskip("quotaflow_theoddsapi.samples")
    archive = theoddsapi.OddsHistory(tmp_path, now=lambda: START)
    games = [
        samples.event("americanfootball_nfl", f"Home {n}", f"Away {n}", START + n, bookmakers=1)
        for n in range(1500)
    ]
    archive(events.Fetched("theoddsapi", START, URL, 200, 1, 60.0, samples.odds(games)))
    archive.close()
    with subprocess.Popen(
        [str(SCRIPT), "history", "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "QUOTAFLOW_HOME": str(tmp_path)},
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()  # like head -1: the rest is never read
        err = process.stderr.read()
        code = process.wait(timeout=60)
    assert first.startswith(b"event")
    assert err == b""
    assert code == 0
