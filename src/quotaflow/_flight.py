"""Single flight: one upstream call per resource, however many ask at once.

Within a process, the first request for a key leads and the others wait on its
event. Across processes (a shared state directory or Redis), the leader also takes
a lease (a lock with an expiry in the shared store); a process that finds the lease
taken waits until it is released, then reads the answer from the cache.
Strictly private.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import attrs
import httpx

from ._clock import Clock
from ._info import Lease
from ._state._backend import Leases
from ._state._leasing import FOLLOW_BODY, LEASE_TTL

__all__ = ["FOLLOW_BODY", "FOLLOW_POLL", "LEASE_POLL", "LEASE_TTL", "Flight", "SingleFlight"]

T = TypeVar("T")

# How often a process waiting for another process's lease looks again. (LEASE_TTL, the
# longest a lease is held, and FOLLOW_BODY, the longest a follower waits for a leader's
# streaming answer, are ``_state._leasing``'s.)
LEASE_POLL = 0.05
# How often a waiting follower looks whether that time has come.
FOLLOW_POLL = 0.05
# Keys whose last answer was not stored, remembered per client (at most this many):
# identical requests for them go upstream side by side instead of one after another.
_UNSTORED = 4096


@attrs.define(eq=False)
class Flight:
    key: str
    token: str | None = None
    error: BaseException | None = None
    done: threading.Event = attrs.field(factory=threading.Event)
    adone: anyio.Event | None = None
    # When the leader's answer began to stream to its caller (monotonic seconds): from
    # then on, followers wait at most FOLLOW_BODY for its body to be stored.
    streaming: float | None = None
    # Whether the leader has let the followers go (``SingleFlight.release``).
    released: bool = False
    # Whether the lease was landed with the rate-limit layer's settle (``_leasing``): a
    # stored answer then lets it lapse, with no release of its own.
    landed: bool = False

    def gives_back(self, error: BaseException | None) -> bool:
        """Whether landing the flight releases a lease (a write to the state): not
        one the settle landed, once its answer is stored."""
        return self.token is not None and not (self.landed and error is None)

    # The one primitive each stack waits on differently: a thread's event, or a task's.

    def wait_done(self, timeout: float) -> bool:
        """Whether the leader landed within ``timeout`` seconds (a thread waits)."""
        return self.done.wait(timeout)

    async def await_done(self, timeout: float) -> bool:
        """Whether the leader landed within ``timeout`` seconds (a task waits)."""
        assert self.adone is not None
        with anyio.move_on_after(timeout):
            await self.adone.wait()
            return True
        return False


def wait_limit(request: httpx.Request) -> float | None:
    """The longest a follower waits for its leader: its own pool timeout (httpx's
    ``timeout`` extension), as it would wait for a connection held by another request;
    without one, its longest other timeout."""
    timeout = request.extensions.get("timeout")
    if isinstance(timeout, dict):
        pool = timeout.get("pool")
        if isinstance(pool, int | float):
            return pool
        values = [value for value in timeout.values() if isinstance(value, int | float)]
        return max(values) if values else None
    return None


def follower_error(flight: Flight, request: httpx.Request) -> BaseException | None:
    """What a follower raises when its leader failed: the same failure, its own copy;
    None when the follower should fetch for itself."""
    from ._transports._core import UpstreamFailed  # the failure type lives with the layers

    error = flight.error
    if isinstance(error, UpstreamFailed):
        failed = error.response
        content = failed.content if failed.is_stream_consumed else b""  # too big to keep
        copy = httpx.Response(failed.status_code, headers=failed.headers, content=content)
        return UpstreamFailed(copy, error.reason)
    if isinstance(error, httpx.TransportError) and not _is_refusal(error):
        return type(error)(str(error), request=request)
    # A refusal (quota, rate) depends on the leader's priority, not on upstream: fetch.
    return None


def _is_refusal(error: BaseException) -> bool:
    from .exceptions import QuotaflowError

    return isinstance(error, QuotaflowError)


class SingleFlight:
    """Decides who leads a fetch. One per client; sync and async callers alike."""

    def __init__(self, leases: Leases, clock: Clock) -> None:
        self._leases = leases
        self._clock = clock
        self._lock = threading.Lock()
        self._flights: dict[str, Flight] = {}
        self._unstored: set[str] = set()
        # The tokens of the leases this client's flights landed (``_leasing``), by key:
        # its next leader on the key takes the lease again with the same token, instead
        # of waiting for its own landed lease to lapse as another process must.
        self._landed: dict[str, str] = {}

    def unstored(self, key: str) -> bool:
        """Whether the last answer for ``key`` was not stored: no flight is worth it."""
        return key in self._unstored

    def stored(self, key: str, stored: bool) -> None:
        """Remember whether the answer for ``key`` was stored (see :meth:`unstored`)."""
        if stored:
            self._unstored.discard(key)
        else:
            if len(self._unstored) >= _UNSTORED:
                self._unstored.clear()
            self._unstored.add(key)

    @staticmethod
    def streaming(flight: Flight) -> None:
        """The leader's answer streams to its caller from now on."""
        flight.streaming = time.monotonic()

    def join(self, key: str, *, asynchronous: bool = False) -> tuple[Flight, bool]:
        """The flight for ``key``, and whether this request leads it (a new flight) or
        follows (the leader's)."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = Flight(key)
            if asynchronous:
                flight.adone = anyio.Event()
        return flight, True

    def lease(self, flight: Flight) -> bool:
        """Take the cross-process lease; False if another process holds it."""
        flight.token = self._leases.acquire(flight.key, LEASE_TTL, self._clock.time())
        return flight.token is not None

    def delegate(self, flight: Flight) -> Lease:
        """The lease for the rate-limit layer to take with its reservation (``_leasing``);
        the flight holds its token, to give it back should it not land."""
        with self._lock:
            landed = self._landed.pop(flight.key, None)
        flight.token = landed or self._leases.token()
        return Lease(flight.key, flight.token)

    def leased_elsewhere(self, key: str) -> bool:
        return self._leases.held(key, self._clock.time())

    def release(self, flight: Flight, error: BaseException | None) -> None:
        """The leader is done (its answer is stored, or it failed): release the
        followers, and the lease. Once per flight: again does nothing."""
        with self._lock:
            if flight.released:
                return
            flight.released = True
        flight.error = error
        if flight.gives_back(error):
            assert flight.token is not None
            self._leases.release(flight.key, flight.token)
        elif flight.token is not None:
            with self._lock:
                if len(self._landed) >= _UNSTORED:
                    self._landed.clear()
                self._landed[flight.key] = flight.token
        with self._lock:
            if self._flights.get(flight.key) is flight:
                del self._flights[flight.key]
        flight.done.set()
        if flight.adone is not None:
            flight.adone.set()


async def aoffload(function: Callable[..., T], *args: Any) -> T:
    """Blocking state I/O, in a worker thread: never on the event loop. (The generated
    sync code calls ``function(*args)`` in place: see ``.ci/unasync.py``.)"""
    return await anyio.to_thread.run_sync(function, *args)


async def aoffload_taking(
    function: Callable[..., T], give_back: Callable[[T], Any], *args: Any
) -> T:
    """``aoffload`` for a call that takes something in the state (a reservation): should
    the caller be cancelled while the worker thread runs it (``asyncio.wait_for``), the
    worker finishes it all the same and its result is dropped, what it took held until
    it lapses. So the cancellation waits (shielded) for the worker, gives back what it
    took (``give_back(result)``), then goes on. (The sync twin calls ``function(*args)``
    in place: see ``.ci/unasync.py``.)"""
    taking = _Taking(function, args)
    try:
        return await anyio.to_thread.run_sync(taking.run)
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True):
            for taken in await anyio.to_thread.run_sync(taking.left):
                await anyio.to_thread.run_sync(give_back, taken)
        raise


class _Taking:
    """One call of ``aoffload_taking`` as its worker thread and its caller see it."""

    def __init__(self, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._function = function
        self._args = args
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._started = self._gone = False
        self._taken: list[Any] = []

    def run(self) -> Any:
        """In the worker: the call, unless its caller has gone already."""
        with self._lock:
            if self._gone:
                raise anyio.get_cancelled_exc_class()  # nobody waits for it
            self._started = True
        try:
            self._taken.append(self._function(*self._args))
            return self._taken[0]
        finally:
            self._done.set()

    def left(self) -> list[Any]:
        """In a worker, for a cancelled caller: what the call took, once it is done
        (nothing if it never started, and then it never will)."""
        with self._lock:
            self._gone = True
            if not self._started:
                return []
        self._done.wait()
        return self._taken


def given_up(flight: Flight, deadline: float | None) -> bool:
    """Whether a follower stops waiting for its leader: past its own ``deadline``
    (monotonic), or the leader's answer has streamed for FOLLOW_BODY without landing."""
    now = time.monotonic()
    if deadline is not None and now >= deadline:
        return True
    return flight.streaming is not None and now - flight.streaming >= FOLLOW_BODY
