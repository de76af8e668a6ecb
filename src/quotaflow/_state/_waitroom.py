"""The priority wait queue in front of a short-window limiter. Strictly private.

When a profile's short window is full, requests queue instead of racing for the
next place: the most important goes first (CRITICAL, HIGH, NORMAL, LOW), first come
first served within a level. Aging keeps anything from waiting forever: each
``AGING`` seconds spent waiting count as one level more, so a request that may wait
long enough overtakes newer, more important ones after ``AGING`` seconds per level
between them. Each request still gives up after its priority's ``max_wait``.

Across processes (``_board``): a waiter above LOW is put on the shared board until
its deadline, and a request defers (waits, at most its own ``max_wait``) while
another process has a more important one waiting.
"""

from __future__ import annotations

import itertools
import math
import threading
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import attrs

from .._priority import Priority
from ..exceptions import RateLimited
from ._board import LOWEST
from ._short import ShortWindow

if TYPE_CHECKING:
    from .._info import Route

__all__ = [
    "AGING",
    "Queue",
    "Waiter",
    "ahead",
    "await_turn",
    "put_up",
    "refuse",
    "take_down",
    "wait_turn",
]

AGING = 5.0
_RANK = {Priority.CRITICAL: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}
# A waiter whose budget is not yet spent looks again at least this often (seconds).
RECHECK = 0.25


@attrs.define(eq=False)
class Waiter:
    rank: int
    seq: int
    since: float

    def order(self, now: float) -> tuple[float, int]:
        return (self.rank - math.floor((now - self.since) / AGING), self.seq)


class Queue:
    """Who goes next: pure bookkeeping, guarded by the room's lock."""

    def __init__(self) -> None:
        self._waiters: list[Waiter] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._waiters)

    def enter(self, priority: Priority, now: float) -> Waiter:
        waiter = Waiter(_RANK[priority], next(self._seq), now)
        self._waiters.append(waiter)
        return waiter

    def leave(self, waiter: Waiter) -> None:
        self._waiters.remove(waiter)

    def head(self, now: float) -> Waiter | None:
        return min(self._waiters, key=lambda waiter: waiter.order(now), default=None)


def refuse(route: Route, wait: float) -> RateLimited:
    max_wait = route.profile.max_wait[route.priority]
    return RateLimited(
        f"{route.profile.name}: short-window limit reached; a {route.priority} request "
        f"would wait {max(wait, 0):.3f}s more (max wait {max_wait}s)",
        profile=route.profile.name,
        retry_after=max(wait, 0.0),
    )


def ahead(window: ShortWindow, route: Route, now: float) -> bool:
    """Whether another process on the state has a more important request waiting."""
    board = window.board
    return board is not None and board.ahead(_RANK[route.priority], now)


def put_up(window: ShortWindow, route: Route, now: float, budget: float) -> str | None:
    """Put a waiter others should let go first on the board, until its deadline."""
    board, rank = window.board, _RANK[route.priority]
    if board is None or rank >= LOWEST:
        return None
    return board.enter(rank, now + budget, now)


def take_down(window: ShortWindow, token: str | None) -> None:
    if token is not None and window.board is not None:
        window.board.leave(token)


def wait_turn(cond: threading.Condition, timeout: float) -> None:
    """Wait (the condition held) to be notified, at most ``timeout`` seconds."""
    cond.wait(timeout)


async def await_turn(cond: anyio.Condition, timeout: float) -> None:
    """Async twin of :func:`wait_turn`."""
    with anyio.move_on_after(timeout):
        await cond.wait()


def condition() -> threading.Condition:
    return threading.Condition()


def acondition() -> anyio.Condition:
    return anyio.Condition()
