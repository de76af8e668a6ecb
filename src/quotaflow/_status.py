"""What ``quotaflow status`` and the dashboard show: per profile, the quota, the tokens
available now, how today's requests were answered, and the gate every process on the
state goes by: the API's 429 pause and the circuit breaker. Strictly private."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from . import _policy
from ._cold import COLD_FILE, STATS_SQL, ColdStats, read_stats
from ._plugins import Registry
from ._profiles import ApiProfile
from ._state._backend import Backend
from ._state._counters import COLUMNS, MAX_ENDPOINTS, OTHER, day_of
from ._state._gate import NO_GATE
from ._state._short import ShortWindow
from ._state._tallies import HOUR_COLUMNS
from ._status_gate import circuit_text, gate_fields, pause_text
from ._status_rows import ledger_rows, read_tallies, rows


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
    # The gate, read from the shared state (see gate_fields).
    circuit: str
    failures: int
    open_until: str | None
    open_seconds_left: float | None
    probe_until: str | None
    paused: bool
    paused_until: str | None
    pause_seconds_left: float | None
    days: list[dict[str, Any]]
    # At the rate of the period so far: units left at the reset (negative: short by that
    # many), and when the quota runs out if before it. None: no quota, or too early.
    forecast_at_reset: int | None = None
    runs_out_at: str | None = None
    # The cold store (``cold.db``): the profile's answers kept there, their bytes, the
    # hits on them and the quota units those hits did not spend.
    cold_entries: int = 0
    cold_bytes: int = 0
    cold_hits: int = 0
    cold_saved: int = 0
    # The quota period so far: when it started, and the units left at its start, at the
    # end of each day since, and now ({"at": ISO time, "remaining": units}); rebuilt from
    # the units spent each day, counted back from what the ledger says is left now.
    period_start: str | None = None
    quota_line: list[dict[str, Any]] = attrs.field(factory=list)
    # Where the state records them (empty otherwise): today's counts per UTC hour
    # ({"hour": "2026-11-29T13", "spent": ..., "refused": ..., ...}), and today's counts
    # by priority and by endpoint ({name: {"requests": ..., "spent": ..., "refused": ...}}).
    hours: list[dict[str, Any]] = attrs.field(factory=list)
    by_priority: dict[str, dict[str, int]] = attrs.field(factory=dict)
    by_endpoint: dict[str, dict[str, int]] = attrs.field(factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


__all__ = ["ProfileStatus", "circuit_text", "gate_fields", "pause_text", "read_status"]

# Days of counters read for the quota line: a monthly period is at most 31 days long.
LINE_DAYS = 32


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _next_reset(profile: ApiProfile, now: float) -> float | None:
    quota = profile.quota
    return None if quota is None else _policy.period_end(quota, now)


@attrs.frozen
class _Recorded:
    """What the state file and the backend hold for the status, read once."""

    today: str
    first_day: str  # of the charts' window
    history: dict[str, list[dict[str, Any]]]  # profile -> its days with traffic
    notes: dict[str, tuple[Any, ...]]  # profile -> (last_error, last_error_at)
    ledger: dict[str, tuple[float, int, int]]  # profile -> (period, total, remaining)
    cold: dict[str, ColdStats]
    strangers: frozenset[str] = frozenset()
    # profile -> "all" (hour -> counts), "priority" / "endpoint" (name -> today's counts)
    hourly: dict[str, dict[str, dict[str, dict[str, int]]]] = attrs.field(factory=dict)


def _recorded(directory: Path, backend: Backend, now: float, days: int) -> _Recorded:
    cold = backend.cold_stats()
    if cold is None:
        cold = read_stats(rows(directory / COLD_FILE, STATS_SQL, ()))
    # A month at least, for the quota line of a monthly period; ``days`` for the charts.
    span = max(days, LINE_DAYS)
    day_list = [day_of(now - n * 86400) for n in range(span - 1, -1, -1)]
    today = day_of(now)
    hour_list = [f"{today}T{n:02d}" for n in range(24)]
    found = read_tallies(directory, backend, day_list, hour_list)
    history: dict[str, list[dict[str, Any]]] = {}
    for day, name, counts in found.days:
        history.setdefault(name, []).append({"day": day, **counts})
    hourly: dict[str, dict[str, dict[str, dict[str, int]]]] = {}
    for (hour, name, kind, which), counts in found.hours:
        into = hourly.setdefault(name, {}).setdefault(kind, {})
        slot = into.setdefault(hour if kind == "all" else which, dict.fromkeys(HOUR_COLUMNS, 0))
        for column, value in counts.items():
            slot[column] = slot.get(column, 0) + value
    # The circuit the notes also keep is only what the events seen saw: the shared
    # gate, read by _status_of, is what every process goes by.
    return _Recorded(
        today,
        day_of(now - (days - 1) * 86400),
        history,
        found.notes,
        ledger_rows(directory, backend),
        cold,
        hourly=hourly,
    )


def _profiles(
    registry: Registry, backend: Backend, recorded: _Recorded
) -> tuple[list[ApiProfile], _Recorded]:
    """The registry's profiles, each followed by its credentials' accounts, then the
    profiles seen in this state but not installed here (they still show what is known)."""
    known = {profile.name for profile in registry.profiles}
    # Each credential is its own quota account (``profile#fingerprint``), shown after its
    # profile with the profile's quota; the short-window limits stay the profile's.
    accounts: dict[str, list[ApiProfile]] = {}
    by_name = {profile.name: profile for profile in registry.profiles}
    for name in sorted({*backend.ledger.accounts(), *recorded.ledger}):
        parent = by_name.get(name.partition("#")[0])
        if "#" in name and parent is not None:
            accounts.setdefault(parent.name, []).append(attrs.evolve(parent, name=name, rates=()))
            known.add(name)
    strangers = sorted((set(recorded.history) | set(recorded.ledger) | set(recorded.notes)) - known)
    profiles = [
        *(p for profile in registry.profiles for p in (profile, *accounts.get(profile.name, ()))),
        *(ApiProfile(name=name, hosts=("?",)) for name in strangers),
    ]
    return profiles, attrs.evolve(recorded, strangers=frozenset(strangers))


def quota_line(
    start: float, now: float, remaining: int, history: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The units left at ``start``, at the end of each day since, and at ``now``: counted
    back from ``remaining`` (now) with the units spent each day (UTC days)."""
    spent = {row["day"]: int(row["spent"]) for row in history}
    points = [(now, remaining)]
    left = remaining
    midnight = (now // 86400) * 86400  # the start of today, the end of yesterday
    while midnight > start:
        left += spent.get(day_of(midnight), 0)  # what that day spent, given back
        points.append((midnight, left))
        midnight -= 86400
    if points[-1][0] > start:  # the first day's spending (counters are per whole day)
        points.append((start, left + spent.get(day_of(start), 0)))
    return [{"at": _iso(at), "remaining": units} for at, units in reversed(points)]


def _quota_fields(
    profile: ApiProfile, backend: Backend, recorded: _Recorded, now: float
) -> dict[str, Any]:
    """total, remaining, the forecast at the period's rate so far, and the quota line."""
    total = remaining = projected = runs_out = None
    extra: dict[str, Any] = {}
    if profile.quota is not None:
        quota = backend.ledger.snapshot(profile, now=now)
        assert quota is not None
        # A lost ledger (a rebuilt state file) is unknown until the API says: never full.
        total, remaining = quota.total, None if quota.unknown else quota.remaining
        found = quota.forecast(now)
        projected = math.floor(found) if found is not None else None
        runs_out = quota.runs_out(now)
        start = quota.start
        history = recorded.history.get(profile.name, []) if quota.known else []
        extra = {
            "period_start": _iso(start),
            "quota_line": [] if remaining is None else quota_line(start, now, remaining, history),
        }
    elif profile.name in recorded.ledger:
        _, total, remaining = recorded.ledger[profile.name]
    return {
        "total": total,
        "remaining": remaining,
        "used": (total - remaining) if total is not None and remaining is not None else None,
        "forecast_at_reset": projected,
        "runs_out_at": _iso(runs_out),
        **extra,
    }


def _rate_fields(profile: ApiProfile, window: ShortWindow, now: float) -> dict[str, Any]:
    if not profile.rates:
        return {"rate": None, "tokens": None}
    first = window.rates[0]
    per = first.interval / 1000
    return {
        "rate": f"{first.limit}/{per:g}s (burst {first.burst})",
        "tokens": window.available(now),
    }


def _status_of(
    profile: ApiProfile, backend: Backend, recorded: _Recorded, now: float
) -> ProfileStatus | None:
    """One profile's status; None for one with nothing to show."""
    history = recorded.history.get(profile.name, [])
    # Every profile has a gate, kept with its rates' state (even without rates).
    window = ShortWindow(profile, backend.window_store(f"rate:{profile.name}"))
    gate = window.stored_gate(now)
    idle = profile.quota is None and not profile.rates and not history and gate == NO_GATE
    if idle and profile.name not in recorded.strangers:
        return None
    note = recorded.notes.get(profile.name, (None, None))
    kept = recorded.cold.get(profile.name, ColdStats(0, 0, 0, 0))
    today = next(
        ({k: v for k, v in h.items() if k != "day"} for h in history if h["day"] == recorded.today),
        dict.fromkeys(COLUMNS, 0),
    )
    return ProfileStatus(
        profile=profile.name,
        **_quota_fields(profile, backend, recorded, now),
        resets_at=_iso(_next_reset(profile, now)),
        **_rate_fields(profile, window, now),
        today=today,
        last_error=note[0],
        last_error_at=_iso(note[1]),
        **gate_fields(gate, now),
        days=[row for row in history if row["day"] >= recorded.first_day],
        cold_entries=kept.entries,
        cold_bytes=kept.size,
        cold_hits=kept.hits,
        cold_saved=kept.saved,
        **_today_fields(recorded.hourly.get(profile.name, {})),
    )


def _today_fields(hourly: dict[str, dict[str, dict[str, int]]]) -> dict[str, Any]:
    """Today's hours (with traffic), and today's counts by priority and by endpoint."""
    hours = [{"hour": hour, **counts} for hour, counts in sorted(hourly.get("all", {}).items())]
    endpoints = sorted(hourly.get("endpoint", {}).items(), key=lambda kv: -kv[1]["requests"])
    by_endpoint = dict(endpoints[:MAX_ENDPOINTS])
    for _, counts in endpoints[MAX_ENDPOINTS:]:  # several processes' own picks, folded
        other = by_endpoint.setdefault(OTHER, dict.fromkeys(HOUR_COLUMNS, 0))
        for column, value in counts.items():
            other[column] = other.get(column, 0) + value
    return {
        "hours": hours,
        "by_priority": dict(sorted(hourly.get("priority", {}).items())),
        "by_endpoint": by_endpoint,
    }


def read_status(
    directory: Path, registry: Registry, backend: Backend, now: float, days: int = 30
) -> list[ProfileStatus]:
    """The status of every profile with a quota, a rate, or traffic in the counters."""
    profiles, recorded = _profiles(registry, backend, _recorded(directory, backend, now, days))
    found = (_status_of(profile, backend, recorded, now) for profile in profiles)
    return [status for status in found if status is not None]
