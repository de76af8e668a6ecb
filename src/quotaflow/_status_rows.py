"""What the status reads from the state file (read-only) and the shared state:
ledger rows and the counters (``_state._tallies``). Strictly private."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from ._profiles import ApiProfile
from ._state._backend import STATE_FILE, Backend
from ._state._tallies import COLUMNS, HOUR_COLUMNS, Tallies

__all__ = ["ledger_rows", "read_tallies", "rows"]


def rows(db: Path, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2.0) as connection:
            return connection.execute(sql, args).fetchall()
    except sqlite3.Error:
        return []


def read_tallies(directory: Path, backend: Backend, days: list[str], hours: list[str]) -> Tallies:
    """The counters, from the shared state: Redis's, else the state file (read-only)."""
    tally = backend.tally()
    found = tally.read(days, hours) if tally is not None else None
    if tally is not None:
        tally.close()
    if found is not None:
        return found
    db = directory / STATE_FILE
    day_rows = [
        (day, name, dict(zip(COLUMNS, values, strict=True)))
        for day, name, *values in rows(
            db,
            f"SELECT day, profile, {', '.join(COLUMNS)} FROM counters WHERE day >= ? ORDER BY day",
            (days[0],),
        )
    ]
    hour_rows = [
        ((hour, name, kind, which), dict(zip(HOUR_COLUMNS, values, strict=True)))
        for hour, name, kind, which, *values in rows(
            db,
            f"SELECT hour, profile, kind, name, {', '.join(HOUR_COLUMNS)} FROM hourly"
            " WHERE hour >= ? AND hour <= ? ORDER BY hour",
            (hours[0], hours[-1]),
        )
    ]
    notes = {
        row[0]: (row[1], row[2])
        for row in rows(db, "SELECT profile, last_error, last_error_at FROM profile_status", ())
    }
    return Tallies(day_rows, hour_rows, notes)


def ledger_rows(directory: Path, backend: Backend) -> dict[str, tuple[float, int, int]]:
    """Every ledger row: the state file's, and the backend's (Redis) when it has others,
    so profiles defined in code (not installed here) still show their quota."""
    ledger = {
        name: (period, total, remaining)
        for name, period, total, remaining in rows(
            directory / STATE_FILE, "SELECT profile, period, total, remaining FROM quota", ()
        )
    }
    if backend.tally() is not None:  # shared elsewhere: its rows win
        for name in backend.ledger.accounts():
            row = backend.ledger.peek(ApiProfile(name=name, hosts=("?",)))
            if row is not None:
                ledger[name] = (row.period, row.total, row.remaining)
    return ledger
