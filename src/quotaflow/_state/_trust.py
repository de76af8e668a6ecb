"""Which quota readings the ledger believes, and what one changes in a period's row:
bounded against what is known of the period (a hostile answer costs its own request at
most, never a later one), and never older than a reading already applied. Pure.
Strictly private."""

from __future__ import annotations

import logging

import attrs

from .._profiles import ApiProfile, QuotaReading

logger = logging.getLogger("quotaflow")


@attrs.frozen
class Row:
    """One profile's quota in one period."""

    period: float
    total: int
    remaining: int
    used: int | None


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


def believed(
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


def read(row: Row, reading: QuotaReading, spent: int) -> Row:
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
