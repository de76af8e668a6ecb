"""The quota ledger: what each profile has left this period, and what is in flight.

The rules live in ``_books``, once; a backend (SQLite, Redis) only provides an atomic
read-modify-write of one profile's books. Strictly private.
"""

from __future__ import annotations

import abc
import logging
import uuid
from collections.abc import Callable
from typing import TypeVar

import attrs

from .._priority import Priority
from .._profiles import ApiProfile, QuotaReading
from ..exceptions import QuotaExhausted
from ._books import (
    Books,
    QuotaSnapshot,
    Row,
    Settled,
    Ticket,
    account_name,
    believed,
    current,
    read,
    refusal,
    snapshot,
)

T = TypeVar("T")
logger = logging.getLogger("quotaflow")


class Ledger(abc.ABC):
    """The long-window quota of every profile and credential, as last known.

    Rows are named by :func:`account_name`.
    """

    def __init__(self) -> None:
        # The last value seen by this process, so cache hits report it for free.
        self._known: dict[str, int] = {}
        self._warned: set[str] = set()  # profiles whose answers were not believed

    @abc.abstractmethod
    def _update(self, name: str, change: Callable[[Books], T]) -> T:
        """Run ``change`` on the books of row ``name`` and store them, atomically.

        ``change`` may run more than once (optimistic backends retry it); if it
        raises, nothing is stored.
        """

    @abc.abstractmethod
    def _peek(self, name: str) -> Row | None:
        """The stored row ``name``, read only."""

    def accounts(self) -> list[str]:
        """The names of every row stored (see :func:`account_name`), for reporting."""
        return []

    def peek(self, profile: ApiProfile, account: str | None = None) -> Row | None:
        """The stored row of ``profile`` and ``account``, read only."""
        return self._peek(account_name(profile, account))

    def snapshot(
        self, profile: ApiProfile, account: str | None = None, *, now: float
    ) -> QuotaSnapshot | None:
        """The quota of ``profile`` and ``account`` at ``now`` (None: no quota), read only."""
        if profile.quota is None:
            return None
        return snapshot(profile, self.peek(profile, account), now)

    def _remember(self, name: str, books: Books) -> None:
        if books.row is not None:
            self._known[name] = books.row.remaining

    def needs_peek(self, profile: ApiProfile, account: str | None = None) -> bool:
        """Whether :meth:`known_remaining` would read the store (async callers offload it)."""
        return profile.quota is not None and account_name(profile, account) not in self._known

    def known_remaining(self, profile: ApiProfile, account: str | None = None) -> int | None:
        if profile.quota is None:
            return None
        name = account_name(profile, account)
        known = self._known.get(name)
        if known is None and (row := self._peek(name)) is not None:
            known = self._known[name] = row.remaining
        return known

    def reserve(
        self,
        profile: ApiProfile,
        priority: Priority,
        cost: int,
        now: float,
        account: str | None = None,
    ) -> Ticket | None:
        """Set ``cost`` units aside for a request about to be sent.

        Raises:
            QuotaExhausted: the units would come out of ``priority``'s reserve.
        """
        if profile.quota is None:
            return None
        name = account_name(profile, account)
        ticket = Ticket(id=uuid.uuid4().hex, profile=name, cost=cost)

        def change(books: Books) -> Ticket:
            quota = current(books, profile, now)
            available = quota.remaining - sum(cost for cost, _ in books.inflight.values())
            why = refusal(profile, priority, quota, available, cost, now)
            if why is not None:
                raise QuotaExhausted(
                    f"{profile.name}: {why}",
                    profile=profile.name,
                    remaining=quota.remaining,
                    cost=cost,
                )
            books.inflight[ticket.id] = (cost, now)
            self._remember(name, books)
            return ticket

        return self._update(name, change)

    def release(self, profile: ApiProfile, ticket: Ticket | None) -> None:
        """The request was never sent: give its units back."""
        if ticket is not None:
            self._update(ticket.profile, lambda books: books.inflight.pop(ticket.id, None))

    def settle(
        self,
        profile: ApiProfile,
        ticket: Ticket | None,
        spent: int,
        reading: QuotaReading,
        now: float,
        *,
        exhausted: bool = False,
        account: str | None = None,
    ) -> int | None:
        """Record what a request cost and what the API said; return the remaining quota."""
        return self.record(
            profile, ticket, spent, reading, now, exhausted=exhausted, account=account
        ).remaining

    def record(
        self,
        profile: ApiProfile,
        ticket: Ticket | None,
        spent: int,
        reading: QuotaReading,
        now: float,
        *,
        exhausted: bool = False,
        account: str | None = None,
    ) -> Settled:
        """:meth:`settle`, also telling which alert levels the quota fell to (each is
        told once, to the one process whose answer crossed it), and logging them."""
        if profile.quota is None:
            return Settled(reading.remaining)
        name = ticket.profile if ticket is not None else account_name(profile, account)

        def change(books: Books) -> Settled:
            if ticket is not None:
                books.inflight.pop(ticket.id, None)
            row = current(books, profile, now).row()
            before = row.remaining
            estimate = ticket.cost if ticket is not None else 0
            taken, cost = believed(profile, row, reading, spent, estimate, self._warned)
            row = read(row, taken, cost)
            if exhausted:
                row = attrs.evolve(row, remaining=min(row.remaining, 0))
            books.row = row
            self._remember(name, books)
            levels = profile.alert_levels(row.total)
            crossed = tuple(level for level in levels if row.remaining <= level < before)
            return Settled(row.remaining, row.total, crossed)

        settled = self._update(name, change)
        if settled.crossed:
            reset = snapshot(profile, None, now).reset
            logger.warning(
                "profile %s: %d of %d quota units left (alert at %s), resets %s",
                name,
                settled.remaining,
                settled.total,
                " and ".join(str(level) for level in settled.crossed),
                reset,
            )
        return settled
