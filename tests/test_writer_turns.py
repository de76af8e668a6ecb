"""Writers of one SQLite file take turns on a lock beside it (``_state/_writers.py``):
handed over at once, never waited for past the transaction's own wait, and free where
the lock cannot be had."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from quotaflow._state import _writers
from quotaflow._state._writers import Turns


class FakeTime:
    """time.monotonic and time.sleep for _writers: sleeping moves the clock."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(_writers, "time", fake)
    return fake


def test_a_free_turn_is_taken_without_waiting(tmp_path: Path, fake_time: FakeTime) -> None:
    turns = Turns(tmp_path / "state.db")
    with turns.turn(2.0):
        pass
    with turns.turn(2.0):
        pass
    assert fake_time.sleeps == []
    assert (tmp_path / "state.db.writers").exists()
    turns.close()


def test_a_held_turn_is_waited_for_no_longer_than_the_wait(
    tmp_path: Path, fake_time: FakeTime
) -> None:
    """Another writer (its own open file: another process, to the kernel) holds the
    turn and never lets go: the transaction goes on after ``wait``, to SQLite's lock."""
    holder, waiter = Turns(tmp_path / "state.db"), Turns(tmp_path / "state.db")
    entered = []
    with holder.turn(2.0), waiter.turn(0.05):
        entered.append(fake_time.now)
    assert entered == [pytest.approx(100.05, abs=0.002)]
    assert fake_time.sleeps[0] == _writers._FIRST
    assert max(fake_time.sleeps) == _writers._LONGEST
    holder.close()
    waiter.close()


def test_the_turn_is_handed_over_when_its_holder_lets_go(tmp_path: Path) -> None:
    holder, waiter = Turns(tmp_path / "state.db"), Turns(tmp_path / "state.db")
    order: list[str] = []
    held, done = threading.Event(), threading.Event()

    def write() -> None:
        held.wait()
        with waiter.turn(60.0):
            order.append("waiter")
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    with holder.turn(2.0):
        held.set()
        order.append("holder")
    assert done.wait(30)
    thread.join()
    assert order == ["holder", "waiter"]
    holder.close()
    waiter.close()


def test_no_lock_file_means_free_turns(tmp_path: Path, fake_time: FakeTime) -> None:
    """A state directory the lock file cannot be made in: SQLite's own wait, as before."""
    turns = Turns(tmp_path / "missing" / "state.db")
    with turns.turn(2.0):
        pass
    assert fake_time.sleeps == []
    turns.close()


def test_a_lock_file_that_is_a_link_is_not_followed(tmp_path: Path, fake_time: FakeTime) -> None:
    """A hostile link in the state directory: nothing is made where it points, and the
    turns are free (SQLite's own lock still guards the file)."""
    target = tmp_path / "elsewhere"
    (tmp_path / "state.db.writers").symlink_to(target)
    turns = Turns(tmp_path / "state.db")
    with turns.turn(2.0):
        pass
    assert not target.exists()
    assert fake_time.sleeps == []
    turns.close()
