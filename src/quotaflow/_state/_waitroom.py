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

from .._clock import Clock
from .._priority import Priority
from ..exceptions import RateLimited
from ._board import LOWEST
from ._short import ShortWindow

if TYPE_CHECKING:
    from .._info import Route
    from .._transports._attempts import Tally

AGING = 5.0
_RANK = {Priority.CRITICAL: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}
# A waiter whose budget is not yet spent looks again at least this often (seconds).
_RECHECK = 0.25


@attrs.define(eq=False)
class _Waiter:
    rank: int
    seq: int
    since: float

    def order(self, now: float) -> tuple[float, int]:
        return (self.rank - math.floor((now - self.since) / AGING), self.seq)


class Queue:
    """Who goes next: pure bookkeeping, guarded by the room's lock."""

    def __init__(self) -> None:
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._waiters)

    def enter(self, priority: Priority, now: float) -> _Waiter:
        waiter = _Waiter(_RANK[priority], next(self._seq), now)
        self._waiters.append(waiter)
        return waiter

    def leave(self, waiter: _Waiter) -> None:
        self._waiters.remove(waiter)

    def head(self, now: float) -> _Waiter | None:
        return min(self._waiters, key=lambda waiter: waiter.order(now), default=None)


def _refuse(route: Route, wait: float) -> RateLimited:
    max_wait = route.profile.max_wait[route.priority]
    return RateLimited(
        f"{route.profile.name}: short-window limit reached; a {route.priority} request "
        f"would wait {max(wait, 0):.3f}s more (max wait {max_wait}s)",
        profile=route.profile.name,
        retry_after=max(wait, 0.0),
    )


def _ahead(window: ShortWindow, route: Route, now: float) -> bool:
    """Whether another process on the state has a more important request waiting."""
    board = window.board
    return board is not None and board.ahead(_RANK[route.priority], now)


def _put_up(window: ShortWindow, route: Route, now: float, budget: float) -> str | None:
    """Put a waiter others should let go first on the board, until its deadline."""
    board, rank = window.board, _RANK[route.priority]
    if board is None or rank >= LOWEST:
        return None
    return board.enter(rank, now + budget, now)


def _take_down(window: ShortWindow, token: str | None) -> None:
    if token is not None and window.board is not None:
        window.board.leave(token)


class WaitRoom:
    """The queue for one profile's bucket, for threads."""

    def __init__(self, window: ShortWindow, clock: Clock) -> None:
        self._window = window
        self._clock = clock
        self._cond = threading.Condition()
        self.queue = Queue()

    def admit(self, route: Route, tally: Tally) -> None:
        """Take a token, waiting in priority order; sets ``tally.waited``.

        Raises:
            RateLimited: the request would wait longer than its max wait.
        """
        clock, budget = self._clock, route.profile.max_wait[route.priority]
        steady = self._window.steady
        if self._window.take_credit(route):
            return  # its place was taken with its reservation (Limiter.reserve)
        with self._cond:
            if not self.queue and not _ahead(self._window, route, clock.time()):
                wait = self._window.try_acquire(clock.time())
                if wait == 0:
                    return
                if wait < 0 or wait > budget:
                    raise _refuse(route, wait)
            elif budget <= 0:
                raise _refuse(route, 0.0)
            me = self.queue.enter(route.priority, steady.at(clock.time()))
            self._window.waiters += 1
            token = _put_up(self._window, route, clock.time(), budget)
            try:
                while True:
                    # Waited and queued on steady time: a clock stepped back never
                    # lengthens a wait past the priority's max wait.
                    now = clock.time()
                    moment = steady.at(now)
                    tally.waited = moment - me.since
                    if self.queue.head(moment) is me:
                        wait = self._next_wait(route, tally, now, budget)
                        if wait == 0:
                            return
                        self._cond.release()
                        try:
                            clock.sleep(wait)
                        finally:
                            self._cond.acquire()
                        # Someone more important may have come meanwhile: let them look.
                        self._cond.notify_all()
                    elif tally.waited >= budget:
                        raise _refuse(route, 0.0)
                    else:
                        self._cond.wait(min(budget - tally.waited, _RECHECK))
            finally:
                self._window.waiters -= 1
                self.queue.leave(me)
                _take_down(self._window, token)
                self._cond.notify_all()

    def _next_wait(self, route: Route, tally: Tally, now: float, budget: float) -> float:
        """0: admitted; else seconds to wait before looking again (or refused)."""
        if _ahead(self._window, route, now):
            if tally.waited >= budget:
                raise _refuse(route, 0.0)
            return min(_RECHECK, budget - tally.waited)
        wait = self._window.try_acquire(now)
        if wait != 0 and (wait < 0 or tally.waited + wait > budget + 1e-9):
            raise _refuse(route, wait)
        return wait


class AsyncWaitRoom:
    """The queue for one profile's bucket, for asyncio tasks (state I/O off the loop)."""

    def __init__(self, window: ShortWindow, clock: Clock) -> None:
        self._window = window
        self._clock = clock
        self._cond = anyio.Condition()
        self.queue = Queue()

    async def _try(self, now: float) -> float:
        return await anyio.to_thread.run_sync(self._window.try_acquire, now)

    async def _ahead(self, route: Route, now: float) -> bool:
        if self._window.board is None:
            return False
        return await anyio.to_thread.run_sync(_ahead, self._window, route, now)

    async def _next_wait(self, route: Route, tally: Tally, now: float, budget: float) -> float:
        """0: admitted; else seconds to wait before looking again (or refused)."""
        if await self._ahead(route, now):
            if tally.waited >= budget:
                raise _refuse(route, 0.0)
            return min(_RECHECK, budget - tally.waited)
        wait = await self._try(now)
        if wait != 0 and (wait < 0 or tally.waited + wait > budget + 1e-9):
            raise _refuse(route, wait)
        return wait

    async def admit(self, route: Route, tally: Tally) -> None:
        clock, budget = self._clock, route.profile.max_wait[route.priority]
        steady = self._window.steady
        if self._window.take_credit(route):
            return  # its place was taken with its reservation (Limiter.reserve)
        async with self._cond:
            if not self.queue and not await self._ahead(route, clock.time()):
                wait = await self._try(clock.time())
                if wait == 0:
                    return
                if wait < 0 or wait > budget:
                    raise _refuse(route, wait)
            elif budget <= 0:
                raise _refuse(route, 0.0)
            me = self.queue.enter(route.priority, steady.at(clock.time()))
            self._window.waiters += 1
            token = await anyio.to_thread.run_sync(
                _put_up, self._window, route, clock.time(), budget
            )
            try:
                while True:
                    now = clock.time()
                    moment = steady.at(now)
                    tally.waited = moment - me.since
                    if self.queue.head(moment) is me:
                        wait = await self._next_wait(route, tally, now, budget)
                        if wait == 0:
                            return
                        self._cond.release()
                        try:
                            await clock.asleep(wait)
                        finally:
                            await self._cond.acquire()
                        self._cond.notify_all()
                    elif tally.waited >= budget:
                        raise _refuse(route, 0.0)
                    else:
                        with anyio.move_on_after(min(budget - tally.waited, _RECHECK)):
                            await self._cond.wait()
            finally:
                self._window.waiters -= 1
                self.queue.leave(me)
                if token is not None:
                    with anyio.CancelScope(shield=True):
                        await anyio.to_thread.run_sync(_take_down, self._window, token)
                self._cond.notify_all()
