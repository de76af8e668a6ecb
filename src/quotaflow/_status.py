"""What ``quotaflow status`` and the dashboard show: per profile, the quota, the tokens
available now, and how today's requests were answered. Strictly private."""

from __future__ import annotations

import calendar
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from . import _policy
from ._backend import STATE_FILE, Backend
from ._counters import COLUMNS, day_of
from ._profiles import ApiProfile, Registry
from ._state import ShortWindow


@attrs.frozen
class ProfileStatus:
    profile: str
    total: int | None
    remaining: int | None
    used: int | None
    resets_at: str | None
    rate: str | None
    tokens: int | None
    today: dict[str, int]
    last_error: str | None
    last_error_at: str | None
    circuit: str
    days: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _next_reset(profile: ApiProfile, now: float) -> float | None:
    quota = profile.quota
    if quota is None:
        return None
    start = datetime.fromtimestamp(_policy.period_start(quota, now), UTC)
    if quota.period == "day":
        return start.timestamp() + 86400
    year, month = (start.year, start.month + 1) if start.month < 12 else (start.year + 1, 1)
    day = min(quota.reset_day, calendar.monthrange(year, month)[1])
    return datetime(year, month, day, tzinfo=UTC).timestamp()


def _rows(db: Path, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2.0) as connection:
            return connection.execute(sql, args).fetchall()
    except sqlite3.Error:
        return []


def read_status(
    directory: Path, registry: Registry, backend: Backend, now: float, days: int = 30
) -> list[ProfileStatus]:
    """The status of every profile with a quota, a rate, or traffic in the counters."""
    db = directory / STATE_FILE
    today = day_of(now)
    since = day_of(now - (days - 1) * 86400)
    counted = _rows(
        db,
        f"SELECT day, profile, {', '.join(COLUMNS)} FROM counters WHERE day >= ? ORDER BY day",
        (since,),
    )
    notes = {
        row[0]: row[1:]
        for row in _rows(
            db,
            "SELECT profile, last_error, last_error_at, circuit, circuit_at FROM profile_status",
            (),
        )
    }
    by_profile: dict[str, list[dict[str, Any]]] = {}
    for day, name, *values in counted:
        by_profile.setdefault(name, []).append(
            {"day": day, **dict(zip(COLUMNS, values, strict=True))}
        )
    # Profiles seen in this state but not installed here still show what is known.
    known = {profile.name for profile in registry.profiles}
    ledger_rows = {
        name: (period, total, remaining)
        for name, period, total, remaining in _rows(
            db, "SELECT profile, period, total, remaining FROM quota", ()
        )
    }
    strangers = sorted((set(by_profile) | set(ledger_rows) | set(notes)) - known)
    profiles = [*registry.profiles, *(ApiProfile(name=name, hosts=("?",)) for name in strangers)]
    result = []
    for profile in profiles:
        history = by_profile.get(profile.name, [])
        stranger = profile.name in strangers
        if profile.quota is None and not profile.rates and not history and not stranger:
            continue
        total = remaining = None
        if profile.quota is not None:
            row = backend.ledger._peek(profile)
            if row is not None and row.period != _policy.period_start(profile.quota, now):
                row = None  # last period's numbers: the quota is whole again
            total = row.total if row else profile.quota.limit
            remaining = row.remaining if row else total
        elif profile.name in ledger_rows:
            _, total, remaining = ledger_rows[profile.name]
        tokens = rate = None
        if profile.rates:
            window = ShortWindow(profile, backend.window_store(f"rate:{profile.name}"))
            first = window.rates[0]
            tokens = window.available(now)
            per = first.interval / 1000
            rate = f"{first.limit}/{per:g}s (burst {first.burst})"
        note = notes.get(profile.name, (None, None, None, None))
        result.append(
            ProfileStatus(
                profile=profile.name,
                total=total,
                remaining=remaining,
                used=(total - remaining) if total is not None and remaining is not None else None,
                resets_at=_iso(_next_reset(profile, now)),
                rate=rate,
                tokens=tokens,
                today=next(
                    (
                        {k: v for k, v in h.items() if k != "day"}
                        for h in history
                        if h["day"] == today
                    ),
                    dict.fromkeys(COLUMNS, 0),
                ),
                last_error=note[0],
                last_error_at=_iso(note[1]),
                circuit=note[2] or "closed",
                days=history,
            )
        )
    return result
