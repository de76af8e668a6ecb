"""Where shared state lives: the quota ledger, the short-window limiter, the
single-flight leases and the cache entries. SQLite by default, Redis when several
machines share an API key. Strictly private."""

from __future__ import annotations

import abc
import logging
import uuid
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import attrs
import hishel

from ._pyrate import StateStore
from ._schema import CACHE_FILE, STATE_FILE

if TYPE_CHECKING:
    from .._cold import ColdStats, ColdStore
    from ._board import Board
    from ._ledger import Ledger
    from ._tallies import Tally

__all__ = [
    "CACHE_FILE",
    "STATE_FILE",
    "Also",
    "Backend",
    "LeaseHeld",
    "LeaseStep",
    "Leases",
    "Unreachable",
]

# Run in the same transaction as a ledger change, on the backend's own handle: the short
# window's check joined to a reservation (``Limiter.reserve``). With a SQLite cursor it
# runs at once; on Redis it joins the ledger's script call (``_redis_books.Step``) and
# returns what reads its reply after the call.
Also = Callable[[Any], Callable[[Any], None] | None]


@attrs.frozen
class LeaseStep:
    """A single-flight lease taken with a reservation (``take``: first in its
    transaction, for ``seconds``; held by another process, it raises ``LeaseHeld`` and
    leaves the transaction undone) or landed with a settle (lapsing ``seconds`` after
    ``now``), in the ledger's transaction (``_leasing``). Strictly private."""

    key: str
    token: str
    seconds: float
    now: float
    take: bool


class Unreachable(Exception):
    """The store cannot keep a change now (busy, unreachable). Strictly private."""


class LeaseHeld(Exception):
    """Another process holds the single-flight lease a reservation asked for, so
    nothing was reserved (``_leasing``): the caching layer waits for that process's
    answer instead. Strictly private."""


logger = logging.getLogger("quotaflow")


class Leases(abc.ABC):
    """Locks with an expiry, so that one process at a time fetches a resource."""

    # Whether a lease may be landed with a settle (``_leasing``): its expiry is judged
    # on the clock the waiters judge it on (the client's; on Redis also Redis's own).
    # Else it is given back once the answer is stored.
    lands = False

    def token(self) -> str:
        """A new token to hold a lease with."""
        return uuid.uuid4().hex

    @abc.abstractmethod
    def acquire(self, key: str, ttl: float, now: float, token: str | None = None) -> str | None:
        """Take the lease on ``key`` (with ``token``, or a new one); return its token, or
        None if another holds it."""

    @abc.abstractmethod
    def release(self, key: str, token: str) -> None:
        """Give the lease back (only if ``token`` still holds it)."""

    @abc.abstractmethod
    def held(self, key: str, now: float) -> bool:
        """Whether someone holds the lease on ``key``."""


class Backend(abc.ABC):
    """One place for all shared state."""

    ledger: Ledger
    leases: Leases

    @abc.abstractmethod
    def window_store(self, key: str) -> StateStore:
        """pyrate-limiter state for one short-window bucket."""

    @abc.abstractmethod
    def storage(self) -> hishel.BaseStorage:
        """hishel storage for the sync stack."""

    @abc.abstractmethod
    def async_storage(self) -> hishel.AsyncBaseStorage:
        """hishel storage for the async stack."""

    def reader(self) -> hishel.BaseStorage | None:
        """A blocking storage over the same entries, for the async stack to read a
        fresh answer in one worker-thread hop; None when its async storage is as cheap."""
        return None

    @abc.abstractmethod
    def fingerprint_key(self) -> bytes:
        """The key credential fingerprints are made with (``_credentials``): the same
        for every process sharing this state, so they share cache partitions."""

    def cold_store(self, max_bytes: int, secrets: Collection[str]) -> ColdStore | None:
        """The cold store kept with this state (``_cold``); None: the state
        directory's ``cold.db``."""
        return None

    def cold_stats(self) -> dict[str, ColdStats] | None:
        """Per profile, what the cold store kept with this state holds; None: read
        the state directory's ``cold.db``."""
        return None

    def tally(self) -> Tally | None:
        """Where the status counters are kept with this state (``_tallies``); None:
        the state directory's ``state.db``."""
        return None

    def board(self, profile: str) -> Board | None:
        """The waiters of every process on this state (``_board``); None: the state
        directory's ``state.db``."""
        return None

    def round_trips(self) -> int:
        """State round trips made so far (SQLite transactions, Redis commands and
        scripts, as counted by the backend): for benchmarks, per miss."""
        return 0

    def close(self) -> None:  # noqa: B027 - backends with resources override it
        pass
