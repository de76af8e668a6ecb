"""Honest time: a process's waits measured so that a wall clock stepped back never
lengthens them. Strictly private.

Moments shared between processes (a pause, a circuit's cool-down, a window's stamps, a
lease) are wall-clock epoch times: the only clock processes and machines share. Within a
process, every deadline learned is turned into *steady* time: the wall clock's readings
with each step back taken out (time goes on as the monotonic clock says across the
step). So a 2 s pause learned before the system clock went back an hour still ends 2 s
later, not an hour and 2 s. Steps forward are taken as they come: a wait may end early,
never late. Readings that go back by less than ``SLACK`` (threads reading the clock in
one order and reaching here in another) are not steps.

Across processes the store does the same for what it keeps (``_window``: a check whose
clock is more than ``JUMP_MS`` behind the state's moves the state's times back with it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# A reading this far behind the latest (seconds) is a step of the clock, not reordering.
SLACK = 1.0


class Steady:
    """Steady time for one process (or one clock): ``at(wall)`` for a wall reading just
    taken. Thread-safe."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._offset = 0.0  # added to wall readings: the sum of the steps back seen
        self._latest: tuple[float, float] | None = None  # (steady, monotonic)
        # How far the wall clock went back at its latest step (seconds; 0: never).
        self.step = 0.0

    def at(self, wall: float) -> float:
        """The steady time of the wall reading ``wall``."""
        mono = self._monotonic()
        with self._lock:
            steady = wall + self._offset
            latest = self._latest
            if latest is not None and steady < latest[0] - SLACK:
                # Stepped back: carry on from the latest reading, by the monotonic clock.
                self.step = latest[0] - steady + max(mono - latest[1], 0.0)
                self._offset += self.step
                steady = wall + self._offset
            if latest is None or steady >= latest[0]:
                self._latest = (steady, mono)
            return steady

    def offset(self) -> float:
        """Steady minus wall time, now (seconds): 0 until the clock first steps back."""
        return self._offset
