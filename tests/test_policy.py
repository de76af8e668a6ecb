"""The pure decisions and the quota ledger, without a client."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from quotaflow import ApiProfile, Priority, Quota, QuotaExhausted, QuotaReading
from quotaflow._policy import admits, clean_ttl, max_age, period_start, staleness_allows
from quotaflow._state._books import INFLIGHT_TIMEOUT
from quotaflow._state._db import StateDB
from quotaflow._state._ledger import Ledger
from quotaflow._state._sqlite import SqliteLedger


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("quota", "now", "start"),
    [
        (Quota(1, period="day"), ts(2026, 3, 5, 23, 59), ts(2026, 3, 5)),
        (Quota(1), ts(2026, 3, 5, 10), ts(2026, 3, 1)),
        (Quota(1, reset_day=15), ts(2026, 3, 14, 23), ts(2026, 2, 15)),
        (Quota(1, reset_day=15), ts(2026, 3, 15), ts(2026, 3, 15)),
        (Quota(1, reset_day=31), ts(2026, 3, 1), ts(2026, 2, 28)),
        (Quota(1, reset_day=10), ts(2026, 1, 2), ts(2025, 12, 10)),
    ],
)
def test_period_start(quota: Quota, now: float, start: float) -> None:
    """Periods start at UTC midnight, monthly on the billing day clamped to the month."""
    assert period_start(quota, now) == start


@pytest.mark.parametrize(
    ("available", "total", "cost", "reserve", "expected"),
    [
        (10, 100, 5, 0.0, True),
        (10, 100, 11, 0.0, False),
        (30, 100, 10, 0.2, True),
        (29, 100, 10, 0.2, False),
        (0, 100, 0, 0.5, True),  # free requests always pass
        (-3, 100, 1, 0.0, False),
    ],
)
def test_admits(available: int, total: int, cost: int, reserve: float, expected: bool) -> None:
    """A cost may not take the quota into the priority's reserve, nor below 0."""
    assert admits(available=available, total=total, cost=cost, reserve=reserve) is expected


def test_ttl_and_staleness_helpers() -> None:
    """TTLs must be finite, non-negative numbers; staleness counts past the TTL."""
    assert clean_ttl(30) == 30.0
    assert [clean_ttl(v) for v in (-1, float("nan"), float("inf"), None, "5", False)] == [None] * 6
    assert max_age(httpx.Headers({"cache-control": "public, max-age=120"})) == 120
    assert max_age(httpx.Headers({"cache-control": "s-maxage=5"})) is None
    assert staleness_allows(age=160, ttl=60, max_stale=100)
    assert not staleness_allows(age=161, ttl=60, max_stale=100)


PROFILE = ApiProfile(name="api", hosts=("api.test",), quota=Quota(100))
NOW = ts(2026, 11, 29, 12)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return SqliteLedger(StateDB(tmp_path / "state.db"))


def test_an_older_reading_never_undoes_a_newer_one(ledger: Ledger) -> None:
    """Answers may arrive out of order: the one with the larger `used` wins."""
    first = ledger.reserve(PROFILE, Priority.NORMAL, 1, NOW)
    second = ledger.reserve(PROFILE, Priority.NORMAL, 1, NOW)

    newer = ledger.settle(PROFILE, second, 1, QuotaReading(remaining=40, used=60), NOW)
    older = ledger.settle(PROFILE, first, 1, QuotaReading(remaining=41, used=59), NOW)

    assert (newer, older) == (40, 40)


def test_in_flight_reservations_count_against_the_reserve(ledger: Ledger) -> None:
    """Units reserved by requests still in flight are not available to others."""
    ledger.settle(PROFILE, None, 0, QuotaReading(remaining=3, used=97), NOW)
    ledger.reserve(PROFILE, Priority.CRITICAL, 2, NOW)

    with pytest.raises(QuotaExhausted):
        ledger.reserve(PROFILE, Priority.CRITICAL, 2, NOW)


def test_a_crashed_reservation_is_charged_not_forgotten(ledger: Ledger) -> None:
    """A reservation never settled (its process died) is charged after the timeout."""
    ledger.reserve(PROFILE, Priority.NORMAL, 5, NOW)

    later = NOW + INFLIGHT_TIMEOUT + 1
    ticket = ledger.reserve(PROFILE, Priority.NORMAL, 1, later)
    remaining = ledger.settle(PROFILE, ticket, 1, QuotaReading(), later)

    assert remaining == 94


def test_a_new_period_restores_the_learned_total(ledger: Ledger) -> None:
    """At the billing day the quota is whole again, at the size the headers taught."""
    ledger.settle(PROFILE, None, 0, QuotaReading(remaining=5, used=19995), NOW)

    next_month = ts(2026, 12, 1, 0, 0)
    ticket = ledger.reserve(PROFILE, Priority.LOW, 1, next_month)

    assert ticket is not None
    assert ledger.settle(PROFILE, ticket, 1, QuotaReading(), next_month) == 19999


def test_a_reading_with_a_limit_sets_the_total(ledger: Ledger) -> None:
    """APIs that send limit + remaining (no used) size the quota from the limit."""
    remaining = ledger.settle(PROFILE, None, 0, QuotaReading(remaining=70, limit=100), NOW)
    older = ledger.settle(PROFILE, None, 0, QuotaReading(remaining=75, limit=100), NOW)

    assert (remaining, older) == (70, 70)
    with pytest.raises(QuotaExhausted):  # NORMAL keeps 20 of the 100 untouched
        ledger.reserve(PROFILE, Priority.NORMAL, 51, NOW)
