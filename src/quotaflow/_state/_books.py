"""The ledger's rules, pure: a profile's books in one period, what an answer changes,
why a request is refused, and the quota as of a moment (:class:`QuotaSnapshot`, the one
place the current period is worked out). Strictly private.
"""

from __future__ import annotations

import logging
import math

import attrs

from .. import _policy
from .._priority import Priority
from .._profiles import ApiProfile, QuotaReading, reads_quota
from ._trust import Row, believed, read

logger = logging.getLogger("quotaflow")

# A reservation whose process never settled it (it crashed) is charged in full
# after this long: the ledger may over-count a crash, never under-count it.
INFLIGHT_TIMEOUT = 600.0


@attrs.define
class Books:
    """What a backend loads and stores atomically for one profile."""

    row: Row | None
    # ticket id -> (cost, when reserved)
    inflight: dict[str, tuple[int, float]] = attrs.field(factory=dict)
    # For a change that replays a journal entry: whether one of its id was stored before.
    replayed: bool = False
    # The row was re-seeded after the store lost it (Redis restarted without persistence)
    # and no API reading came since: each process brings what it saw (``Ledger._seed``).
    seeded: bool = False
    # The store lost the rows it held (a corrupt state.db rebuilt): an account without a
    # row has an unknown quota, not a whole one (``QuotaSnapshot.unknown``).
    lost: bool = False


@attrs.frozen
class Ticket:
    """A reservation of quota units for one request in flight."""

    id: str
    profile: str  # the ledger row: see account_name
    cost: int


@attrs.frozen
class QuotaSnapshot:
    """One account's quota as of a moment: the period worked out once, for the ledger's
    decisions, ``status``, ``plan`` and the dashboard alike.

    ``known``: the books hold this period (else nothing was stored for it yet and the
    quota is whole again: ``total`` as last learned, or the profile's).
    ``unknown``: the store lost its rows (``Books.lost``) and holds none for this
    account of a profile whose API reports its count: what is left is unknown until an
    answer says (``remaining`` then holds the plan's size, for the decisions only).
    A first use counts from the plan's size, as the issue's plans do.
    """

    start: float  # the period's first moment (epoch seconds)
    end: float  # the next reset
    total: int
    remaining: int
    used: int | None
    known: bool
    unknown: bool = False

    @property
    def reset(self) -> str:
        """The next reset, ISO 8601 UTC."""
        return _policy.iso_utc(self.end)

    def forecast(self, now: float) -> float | None:
        """Units left at the reset if the period goes on spending as it has so far."""
        if not self.known:
            return None
        spent = self.total - self.remaining
        return _policy.forecast(
            now=now, start=self.start, end=self.end, total=self.total, spent=spent
        )

    def runs_out(self, now: float) -> float | None:
        """When the quota runs out at the period's rate so far, if before the reset."""
        if not self.known:
            return None
        spent = self.total - self.remaining
        return _policy.runs_out(
            now=now, start=self.start, end=self.end, total=self.total, spent=spent
        )

    def row(self) -> Row:
        return Row(period=self.start, total=self.total, remaining=self.remaining, used=self.used)


def snapshot(
    profile: ApiProfile, row: Row | None, now: float, *, lost: bool = False
) -> QuotaSnapshot:
    """The quota of ``profile`` at ``now``, from its stored ``row`` (None: none; ``lost``:
    the store lost the rows it held)."""
    assert profile.quota is not None
    start = _policy.period_start(profile.quota, now)
    # Periods are keyed on the quota's own period, and only ever move on: a row of a
    # later period than ``now``'s is a clock that stepped back (say a minute, across
    # midnight), and it stays the current one: a step back never wipes a count.
    if row is not None and row.period >= start:
        end = _policy.period_end(profile.quota, row.period)
        return QuotaSnapshot(row.period, end, row.total, row.remaining, row.used, known=True)
    # A new period: the whole quota again (the size learned from headers is kept).
    total = row.total if row is not None else profile.quota.limit
    end = _policy.period_end(profile.quota, start)
    unknown = row is None and lost and reads_quota(profile)
    return QuotaSnapshot(start, end, total, total, None, known=False, unknown=unknown)


def current(books: Books, profile: ApiProfile, now: float) -> QuotaSnapshot:
    """The books moved to the period containing ``now``, abandoned reservations charged;
    the quota as they now stand."""
    found = snapshot(profile, books.row, now, lost=books.lost)
    row = found.row()
    abandoned = [
        key for key, (_, started) in books.inflight.items() if started < now - INFLIGHT_TIMEOUT
    ]
    if abandoned:
        spent = sum(books.inflight.pop(key)[0] for key in abandoned)
        row = attrs.evolve(row, remaining=row.remaining - spent)
        found = attrs.evolve(found, remaining=row.remaining)
    if not found.unknown:  # an unknown count stays unknown: no row is made up for it
        books.row = row
    return found


# Priorities an even pace holds to the plan; the others may spend ahead of it.
PACED = frozenset({Priority.NORMAL, Priority.LOW})


def refusal(
    profile: ApiProfile,
    priority: Priority,
    quota: QuotaSnapshot,
    available: int,
    cost: int,
    now: float,
) -> str | None:
    """Why a request costing ``cost`` may not go now, or None if it may."""
    if cost <= 0:
        return None
    total, reset = quota.total, quota.reset
    if quota.unknown and priority is not Priority.CRITICAL and available < total:
        # Nothing stored to count from (a first use, a lost state.db, an emptied Redis):
        # one request at a time but critical ones, so the first answer's count comes
        # before more are spent on a guess (ApiProfile.probe asks for it for free).
        return (
            f"the remaining quota is unknown until an answer reports it: {priority} "
            f"requests go one at a time meanwhile"
        )
    if quota.remaining <= 0:
        return f"quota used up until {reset}"
    if available < cost:
        return (
            f"a request costing {cost} needs more than the {max(available, 0)} of "
            f"{total} units left until {reset}"
        )
    reserve = profile.reserves[priority]
    if not _policy.admits(available=available, total=total, cost=cost, reserve=reserve):
        return (
            f"a request costing {cost} would leave {available - cost} of {total} units, "
            f"inside the {reserve:.0%} reserve of priority {priority}"
        )
    if profile.pace is not None and priority in PACED:
        return _off_pace(profile, priority, quota, available, cost, now)
    return None


def _off_pace(
    profile: ApiProfile,
    priority: Priority,
    quota: QuotaSnapshot,
    available: int,
    cost: int,
    now: float,
) -> str | None:
    """Why a paced request may not go now (ahead of the plan), or None."""
    total, reserve = quota.total, profile.reserves[priority]
    assert profile.pace is not None
    budget = _policy.pace_budget(
        now=now, start=quota.start, end=quota.end, total=total, reserve=reserve, pace=profile.pace
    )
    spent = total - available
    if _policy.within_budget(budget, total=total, spent=spent, cost=cost):
        return None
    why = (
        f"held to the pace: {spent} of {max(math.floor(budget), 0)} spent by now "
        f"(resets {quota.reset}); {priority} requests wait for the plan (this one costs {cost})"
    )
    if budget < _policy.PACE_ALLOWANCE * total:  # the plan has not passed the reserve
        why += (
            f"; the plan has not yet passed {priority}'s {reserve:.0%} reserve "
            "(with a pace, keep reserves to a few percent: ApiProfile.reserves)"
        )
    return why


@attrs.frozen
class Settled:
    """What recording an answer left: the remaining quota, and the alert levels
    (units left, see ``ApiProfile.alerts``) it fell to or below this time."""

    remaining: int | None
    total: int | None = None
    crossed: tuple[int, ...] = ()
    # Units left at the reset at the period's rate so far (None: too early to say).
    forecast: float | None = None
    # Whether the store kept it (and what ran in its transaction, ``Ledger.record``).
    stored: bool = False


def settle_books(
    books: Books,
    profile: ApiProfile,
    ticket: str,
    spent: int,
    reading: QuotaReading,
    now: float,
    estimate: int,
    exhausted: bool,
    warned: set[str],
) -> Settled:
    """Record on ``books`` what a request cost and what the API said (the reservation
    ``ticket`` settled): the remaining quota and the alert levels it fell to."""
    books.inflight.pop(ticket, None)
    quota = current(books, profile, now)
    row = quota.row()
    before = row.remaining
    taken, cost = believed(profile, row, reading, spent, estimate, warned)
    if taken.remaining is not None:
        books.seeded = False  # the API's own word: nothing to bring any more
    elif quota.unknown and not exhausted:
        return Settled(None)  # counting down from a guess would make it look known
    row = read(row, taken, cost)
    if exhausted:
        row = attrs.evolve(row, remaining=min(row.remaining, 0))
    books.row = row
    levels = profile.alert_levels(row.total)
    crossed = tuple(level for level in levels if row.remaining <= level < before)
    ahead = snapshot(profile, row, now).forecast(now)
    return Settled(row.remaining, row.total, crossed, ahead)


def forecast(profile: ApiProfile, row: Row | None, now: float) -> float | None:
    """Units left at the reset if the row's period goes on spending as it has so far."""
    if profile.quota is None:
        return None
    return snapshot(profile, row, now).forecast(now)


def account_name(profile: ApiProfile, account: str | None) -> str:
    """The ledger's row for ``profile`` and a credential's short fingerprint: every
    credential (API key) is its own quota; a request without one uses the profile's."""
    return profile.name if account is None else f"{profile.name}#{account}"


def warn_crossed(profile: ApiProfile, name: str, settled: Settled, now: float) -> None:
    """Log the alert levels a recorded answer made the quota of row ``name`` fall to."""
    logger.warning(
        "profile %s: %d of %d quota units left (alert at %s), resets %s",
        name,
        settled.remaining,
        settled.total,
        " and ".join(str(level) for level in settled.crossed),
        snapshot(profile, None, now).reset,
    )
