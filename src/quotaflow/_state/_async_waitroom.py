"""The wait room of one profile's short window, for asyncio tasks (state I/O off the
loop): written once, async; ``.ci/unasync.py`` generates the threads' twin,
``_sync_waitroom.py``. The queue and its rules are ``_waitroom``'s. Strictly private."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from .._clock import Clock
from .._flight import aoffload
from ._short import ShortWindow
from ._waitroom import (
    RECHECK,
    Queue,
    Waiter,
    acondition,
    ahead,
    await_turn,
    put_up,
    refuse,
    take_down,
)

if TYPE_CHECKING:
    from .._info import Route
    from .._transports._attempts import Tally


class AsyncWaitRoom:
    """The queue for one profile's bucket."""

    def __init__(self, window: ShortWindow, clock: Clock) -> None:
        self._window = window
        self._clock = clock
        self._cond = acondition()
        self.queue = Queue()

    async def _alooks_ahead(self, route: Route, now: float) -> bool:
        """Whether another process has a more important request waiting."""
        if self._window.board is None:
            return False
        return await aoffload(ahead, self._window, route, now)

    async def _anext_wait(self, route: Route, tally: Tally, now: float, budget: float) -> float:
        """0: admitted; else seconds to wait before looking again (or refused)."""
        if await self._alooks_ahead(route, now):
            if tally.waited >= budget:
                raise refuse(route, 0.0)
            return min(RECHECK, budget - tally.waited)
        wait = await aoffload(self._window.try_acquire, now)
        if wait != 0 and (wait < 0 or tally.waited + wait > budget + 1e-9):
            raise refuse(route, wait)
        return wait

    async def admit(self, route: Route, tally: Tally) -> None:
        """Take a token, waiting in priority order; sets ``tally.waited``.

        Raises:
            RateLimited: the request would wait longer than its max wait.
        """
        clock, budget = self._clock, route.profile.max_wait[route.priority]
        if self._window.take_credit(route):
            return  # its place was taken with its reservation (Limiter.reserve)
        async with self._cond:
            if not self.queue and not await self._alooks_ahead(route, clock.time()):
                wait = await aoffload(self._window.try_acquire, clock.time())
                if wait == 0:
                    return
                if wait < 0 or wait > budget:
                    raise refuse(route, wait)
            elif budget <= 0:
                raise refuse(route, 0.0)
            me = self.queue.enter(route.priority, self._window.steady.at(clock.time()))
            self._window.waiters += 1
            token = await aoffload(put_up, self._window, route, clock.time(), budget)
            try:
                await self._await_turns(route, tally, me, budget)
            finally:
                self._window.waiters -= 1
                self.queue.leave(me)
                with anyio.CancelScope(shield=True):
                    await aoffload(take_down, self._window, token)
                self._cond.notify_all()

    async def _await_turns(self, route: Route, tally: Tally, me: Waiter, budget: float) -> None:
        """Wait in the queue (the condition held) until admitted or refused."""
        clock, steady = self._clock, self._window.steady
        while True:
            # Waited and queued on steady time: a clock stepped back never lengthens a
            # wait past the priority's max wait.
            now = clock.time()
            moment = steady.at(now)
            tally.waited = moment - me.since
            if self.queue.head(moment) is me:
                wait = await self._anext_wait(route, tally, now, budget)
                if wait == 0:
                    return
                self._cond.release()
                try:
                    await clock.asleep(wait)
                finally:
                    await self._cond.acquire()
                # Someone more important may have come meanwhile: let them look.
                self._cond.notify_all()
            elif tally.waited >= budget:
                raise refuse(route, 0.0)
            else:
                await await_turn(self._cond, min(budget - tally.waited, RECHECK))
