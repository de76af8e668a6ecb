"""The quota ledger: what each profile has left this period, and what is in flight.

The rules live in ``_books``, once; a backend (SQLite, Redis) only provides an atomic
read-modify-write of one profile's books. What the backend could not keep is decided on
the books last seen here, and a call's cost goes to the journal (``_journal``) until the
backend answers again. Strictly private.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Callable
from typing import TypeVar

import attrs

from .._priority import Priority
from .._profiles import ApiProfile, QuotaReading
from ..exceptions import QuotaExhausted
from ._backend import Also, Leases, LeaseStep, Unreachable
from ._board import Board
from ._books import (
    Books,
    QuotaSnapshot,
    Settled,
    Ticket,
    account_name,
    current,
    refusal,
    settle_books,
    snapshot,
    warn_crossed,
)
from ._journal import Journal
from ._pyrate import StateStore
from ._replay import replayed
from ._trust import Row

__all__ = ["Also", "Ledger", "Unreachable"]

T = TypeVar("T")


class Ledger(abc.ABC):
    """The long-window quota of every profile and credential, as last known.

    Rows are named by :func:`account_name`.
    """

    def __init__(self, journal: Journal | None = None) -> None:
        # The last value seen by this process, so cache hits report it for free.
        self._known: dict[str, int] = {}
        self._warned: set[str] = set()  # profiles whose answers were not believed
        # The last row seen of each account: what a store that lost its rows (a Redis
        # restarted without persistence) or cannot answer is re-seeded with.
        self._seen: dict[str, Row] = {}
        self._profiles: dict[str, ApiProfile] = {}  # by name, to replay the journal
        # Rows whose quota a reservation found unknown (a lost ledger), until an answer
        # with the API's count: what ``ApiProfile.probe`` is sent for.
        self.unknown: set[str] = set()
        self.journal = journal

    @abc.abstractmethod
    def _store(
        self,
        name: str,
        change: Callable[[Books], T],
        once: str = "",
        also: Also | None = None,
        lease: LeaseStep | None = None,
    ) -> T:
        """Run ``change`` on the books of row ``name`` and store them, atomically.

        ``change`` may run more than once (optimistic backends retry it); if it
        raises, nothing is stored. ``once``: the id of the journal entry the change
        applies; the books tell whether one of that id was stored before
        (``Books.replayed``), and the id is stored with the change. ``also`` (after
        ``change``) and ``lease`` (see ``LeaseStep``): in the same transaction, if
        the backend can (see :meth:`joint`).

        Raises:
            Unreachable: the store cannot keep it now.
        """

    def joint(self, store: StateStore | Leases | Board) -> bool:
        """Whether a check on ``store`` (or a lease) can join this ledger's transactions
        (``also``, ``lease``)."""
        return False

    def _fallback(self, name: str, change: Callable[[Books], T]) -> T:
        """Decide without the store: on fresh books, nothing kept."""
        return change(Books(row=None))

    def _update(
        self,
        name: str,
        change: Callable[[Books], T],
        also: Also | None = None,
        lease: LeaseStep | None = None,
    ) -> tuple[T, bool]:
        """``change`` stored (True), or decided without the store (False)."""
        try:
            return self._store(name, change, also=also, lease=lease), True
        except Unreachable:
            return self._fallback(name, change), False

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
        row = self.peek(profile, account)
        return snapshot(profile, row, now, lost=row is None and self.lost())

    def lost(self) -> bool:
        """Whether the store lost the rows it held (a corrupt state file rebuilt)."""
        return False

    def _seed(self, name: str, books: Books) -> None:
        """Books without a row, of an account seen here: the row last seen (a store that
        lost it, or cannot answer, does not make the quota whole again). Books re-seeded
        so (by any process) take the most this process saw spent in the period, until
        the API's own numbers come: every process brings its last row, not just one."""
        seen = self._seen.get(name)
        if books.row is None:
            # Marked even with nothing to bring: a process that saw the row before the
            # store lost it may come later.
            books.row, books.seeded = seen, True
        elif seen is not None and (
            books.seeded
            and books.row.period == seen.period
            and seen.remaining < books.row.remaining
        ):
            books.row = attrs.evolve(books.row, remaining=seen.remaining)

    def _remember(self, name: str, books: Books) -> None:
        if books.row is not None:
            self._known[name] = books.row.remaining

    def _stored(self, name: str, books: list[Books], now: float) -> None:
        """A change was stored: its row is the one to re-seed with; the journal may go."""
        if books and (row := books[-1].row) is not None:
            self._seen[name] = row
        self.replay(now)

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
        return self.reserve_with(profile, priority, cost, now, account)[0]

    def reserve_with(
        self,
        profile: ApiProfile,
        priority: Priority,
        cost: int,
        now: float,
        account: str | None = None,
        also: Also | None = None,
        lease: LeaseStep | None = None,
    ) -> tuple[Ticket | None, bool]:
        """:meth:`reserve`, with ``also`` and ``lease`` in the same transaction if the
        backend can (:meth:`joint`); also whether the reservation (and they) was stored.

        Raises:
            QuotaExhausted: the units would come out of ``priority``'s reserve.
            LeaseHeld: ``lease`` is held by another process.
        """
        if profile.quota is None:
            return None, False
        name = account_name(profile, account)
        ticket = Ticket(id=uuid.uuid4().hex, profile=name, cost=cost)
        self._profiles[profile.name] = profile

        seen: list[Books] = []

        def change(books: Books) -> Ticket:
            self._seed(name, books)
            seen.append(books)
            quota = current(books, profile, now)
            if quota.unknown:
                self.unknown.add(name)
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

        found, stored = self._update(name, change, also, lease)
        if stored:
            self._stored(name, seen, now)
        return found, stored

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
        lease: LeaseStep | None = None,
    ) -> Settled:
        """:meth:`settle`, also telling which alert levels the quota fell to (each is
        told once, to the one process whose answer crossed it), and logging them. A
        call the store cannot record now goes to the journal. ``lease``: landed in the
        same transaction if the backend can; whether it was stored: ``Settled.stored``."""
        if profile.quota is None:
            return Settled(reading.remaining)
        name = ticket.profile if ticket is not None else account_name(profile, account)
        self._profiles[profile.name] = profile
        estimate, held = (ticket.cost, ticket.id) if ticket is not None else (0, "")

        seen: list[Books] = []

        def change(books: Books) -> Settled:
            self._seed(name, books)
            seen.append(books)
            found = settle_books(
                books, profile, held, spent, reading, now, estimate, exhausted, self._warned
            )
            if books.row is not None:
                self.unknown.discard(name)
            self._remember(name, books)
            return found

        settled, stored = self._update(name, change, lease=lease)
        if stored:
            self._stored(name, seen, now)
            settled = attrs.evolve(settled, stored=True)
        elif self.journal is not None:
            entry = self.journal.new(profile.name, name, held, spent, reading, now)
            self.journal.write(attrs.evolve(entry, exhausted=exhausted))
        if settled.crossed:
            warn_crossed(profile, name, settled, now)
        return settled

    def replay(self, now: float) -> int:
        """Record the journal's entries, each exactly once, if the store now answers;
        return how many were taken (an ended period's are dropped)."""
        if self.journal is None or not self.journal.due():
            return 0
        return self.journal.replay(lambda entry: replayed(self, entry, now))
