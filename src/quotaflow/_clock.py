from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable

import anyio
import attrs

__all__ = ["Clock"]


@attrs.frozen
class Clock:
    """Where quotaflow reads the time and how it waits.

    The defaults are the system's. Tests and simulations pass their own, e.g. a
    ``sleep`` that moves a fake clock forward instead of blocking.

    Args:
        time: seconds since the epoch.
        sleep: blocks for that many seconds (sync clients).
        asleep: waits that many seconds (async clients).
        random: a number in [0, 1), for the jitter of retry backoffs.
        monotonic: seconds on a clock that never steps (``time.monotonic``): waits,
            pauses and cool-downs within a process are measured on it when ``time``
            steps back (``_state._steady``).

    .. versionadded:: 0.1
    """

    time: Callable[[], float] = attrs.field(default=lambda: time.time())
    sleep: Callable[[float], None] = attrs.field(default=lambda seconds: time.sleep(seconds))
    asleep: Callable[[float], Awaitable[None]] = attrs.field(default=anyio.sleep)
    random: Callable[[], float] = attrs.field(default=random.random)
    monotonic: Callable[[], float] = attrs.field(default=lambda: time.monotonic())
