"""The quota ledger: what each profile has left this period, and what is in flight.

The rules live here, once; a backend (SQLite, Redis) only provides an atomic
read-modify-write of one profile's books. Strictly private.
"""

from __future__ import annotations

import abc
import logging
import math
import uuid
from collections.abc import Callable
from typing import TypeVar

import attrs

from . import _policy
from ._priority import Priority
from ._profiles import ApiProfile, QuotaReading
from .exceptions import QuotaExhausted

T = TypeVar("T")
logger = logging.getLogger("quotaflow")

# A reservation whose process never settled it (it crashed) is charged in full
# after this long: the ledger may over-count a crash, never under-count it.
INFLIGHT_TIMEOUT = 600.0


@attrs.frozen
class Row:
    """One profile's quota in one period."""

    period: float
    total: int
    remaining: int
    used: int | None


@attrs.define
class Books:
    """What a backend loads and stores atomically for one profile."""

    row: Row | None
    # ticket id -> (cost, when reserved)
    inflight: dict[str, tuple[int, float]] = attrs.field(factory=dict)


@attrs.frozen
class Ticket:
    """A reservation of quota units for one request in flight."""

    id: str
    profile: str  # the ledger row: see account_name
    cost: int


def _current(books: Books, profile: ApiProfile, now: float) -> Row:
    """The row for the period containing ``now``, charging abandoned reservations."""
    assert profile.quota is not None
    period = _policy.period_start(profile.quota, now)
    row = books.row
    if row is None or row.period != period:
        # A new period: the whole quota again (the size learned from headers is kept).
        total = row.total if row is not None else profile.quota.limit
        row = Row(period=period, total=total, remaining=total, used=None)
    abandoned = [
        key for key, (_, started) in books.inflight.items() if started < now - INFLIGHT_TIMEOUT
    ]
    if abandoned:
        spent = sum(books.inflight.pop(key)[0] for key in abandoned)
        row = attrs.evolve(row, remaining=row.remaining - spent)
    books.row = row
    return row


# How far one answer is believed (issue 13: a single ``x-requests-used: 2**53`` refused
# every later request of the period). The first reading of a period may teach a plan far
# larger than the profile's Quota (The Odds API: the free 500 against plans of 15M, 30,000
# times more); within a period a plan does not grow tenfold. One call never costs more than
# the whole quota.
FIRST_READING_GROWTH = 100_000
READING_GROWTH = 10
# ``used`` below the last reading by less than this share of the total: an answer that
# left the API before the last one. By more: the API's count went down (the last reading
# was wrong, or the API reset early), and the new reading is taken.
OUT_OF_ORDER_SHARE = 0.1


def plausible(row: Row, reading: QuotaReading, spent: int, limit: int) -> bool:
    """Whether an answer's quota numbers (and its cost) fit what is known of the period."""
    known = max(row.total, limit)
    ceiling = known * (FIRST_READING_GROWTH if row.used is None else READING_GROWTH)
    if any(n is not None and n > ceiling for n in (reading.remaining, reading.used, reading.limit)):
        return False
    if (reading.used is not None and reading.used < 0) or (
        reading.limit is not None and reading.limit <= 0
    ):
        return False
    return spent <= known


def _believed(
    profile: ApiProfile,
    row: Row,
    reading: QuotaReading,
    spent: int,
    estimate: int,
    warned: set[str],
) -> tuple[QuotaReading, int]:
    """The reading and cost to record: an implausible answer counts as its estimate, with
    a warning (once per profile and ledger: a hostile API would flood the log)."""
    assert profile.quota is not None
    if plausible(row, reading, spent, profile.quota.limit):
        return reading, spent
    if profile.name not in warned:
        warned.add(profile.name)
        logger.warning(
            "profile %s: ignoring an implausible quota reading (%s, cost %d) against a "
            "quota of %d; counting the request's estimate",
            profile.name,
            reading,
            spent,
            row.total,
        )
    return QuotaReading(), estimate


def _read(row: Row, reading: QuotaReading, spent: int) -> Row:
    """Apply an answer: the API's word is the truth, unless it is out of date.

    ``used`` only grows within a period, so a reading with a slightly smaller one left
    the API before a reading already applied (and its cost is counted in that one).
    """
    if reading.remaining is not None:
        used = reading.used
        if used is None and reading.limit is not None:
            used = reading.limit - reading.remaining
        if (
            used is not None
            and row.used is not None
            and row.used - OUT_OF_ORDER_SHARE * row.total <= used < row.used
        ):
            return row
        used = used if used is not None else row.used
        if reading.limit is not None:
            total = reading.limit
        else:
            total = used + reading.remaining if used is not None else row.total
        return Row(row.period, max(total, 1), reading.remaining, used)
    used = row.used + spent if row.used is not None else None
    return attrs.evolve(row, remaining=row.remaining - spent, used=used)


# Priorities an even pace holds to the plan; the others may spend ahead of it.
PACED = frozenset({Priority.NORMAL, Priority.LOW})


def _refusal(
    profile: ApiProfile, priority: Priority, row: Row, available: int, cost: int, now: float
) -> str | None:
    """Why a request costing ``cost`` may not go now, or None if it may."""
    assert profile.quota is not None
    if cost <= 0:
        return None
    reset = _policy.iso_utc(_policy.period_end(profile.quota, now))
    if row.remaining <= 0:
        return f"quota used up until {reset}"
    if available < cost:
        return (
            f"a request costing {cost} needs more than the {max(available, 0)} of "
            f"{row.total} units left until {reset}"
        )
    reserve = profile.reserves[priority]
    if not _policy.admits(available=available, total=row.total, cost=cost, reserve=reserve):
        return (
            f"a request costing {cost} would leave {available - cost} of {row.total} units, "
            f"inside the {reserve:.0%} reserve of priority {priority}"
        )
    if profile.pace == "even" and priority in PACED:
        start, end = row.period, _policy.period_end(profile.quota, now)
        spent = row.total - available
        if not _policy.paced(
            now=now, start=start, end=end, total=row.total, spent=spent, cost=cost, reserve=reserve
        ):
            budget = _policy.pace_budget(
                now=now, start=start, end=end, total=row.total, reserve=reserve
            )
            return (
                f"held to the pace: {spent} of {max(math.floor(budget), 0)} spent by now "
                f"(resets {reset}); {priority} requests wait for the plan (this one costs {cost})"
            )
    return None


@attrs.frozen
class Settled:
    """What recording an answer left: the remaining quota, and the alert levels
    (units left, see ``ApiProfile.alerts``) it fell to or below this time."""

    remaining: int | None
    total: int | None = None
    crossed: tuple[int, ...] = ()


def forecast(profile: ApiProfile, row: Row | None, now: float) -> float | None:
    """Units left at the reset if the row's period goes on spending as it has so far."""
    if profile.quota is None or row is None:
        return None
    start = _policy.period_start(profile.quota, now)
    if row.period != start:
        return None
    end = _policy.period_end(profile.quota, now)
    spent = row.total - row.remaining
    return _policy.forecast(now=now, start=start, end=end, total=row.total, spent=spent)


def account_name(profile: ApiProfile, account: str | None) -> str:
    """The ledger's row for ``profile`` and a credential's short fingerprint: every
    credential (API key) is its own quota; a request without one uses the profile's."""
    return profile.name if account is None else f"{profile.name}#{account}"


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
            row = _current(books, profile, now)
            available = row.remaining - sum(cost for cost, _ in books.inflight.values())
            refusal = _refusal(profile, priority, row, available, cost, now)
            if refusal is not None:
                raise QuotaExhausted(
                    f"{profile.name}: {refusal}",
                    profile=profile.name,
                    remaining=row.remaining,
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
            row = _current(books, profile, now)
            before = row.remaining
            estimate = ticket.cost if ticket is not None else 0
            believed, cost = _believed(profile, row, reading, spent, estimate, self._warned)
            row = _read(row, believed, cost)
            if exhausted:
                row = attrs.evolve(row, remaining=min(row.remaining, 0))
            books.row = row
            self._remember(name, books)
            levels = profile.alert_levels(row.total)
            crossed = tuple(level for level in levels if row.remaining <= level < before)
            return Settled(row.remaining, row.total, crossed)

        settled = self._update(name, change)
        if settled.crossed:
            reset = _policy.iso_utc(_policy.period_end(profile.quota, now))
            logger.warning(
                "profile %s: %d of %d quota units left (alert at %s), resets %s",
                name,
                settled.remaining,
                settled.total,
                " and ".join(str(level) for level in settled.crossed),
                reset,
            )
        return settled
