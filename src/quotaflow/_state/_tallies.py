"""Where the status counters are kept: the shared state, so every machine on it shows
the same numbers. Strictly private.

A tally is keyed ``(bucket, profile, kind, name)``: ``bucket`` a UTC day
(``2026-11-29``, kind ``all``) or hour (``2026-11-29T13``, kinds ``all``, ``priority``
and ``endpoint``), ``name`` the priority or endpoint (``""`` for ``all``).

- SQLite (the state file): days in ``counters``, hours in ``hourly``; notes (the last
  error, the circuit) in ``profile_status``.
- Redis: ``{prefix}:counts:{bucket}``, a hash of ``profile\\x1fkind\\x1fname\\x1fcolumn``
  -> count (HINCRBY), expiring DAY_TTL / HOUR_TTL after its last write; notes in
  ``{prefix}:notes``, a hash of ``profile\\x1fcolumn`` -> value. A flush is one
  pipelined round trip; a read is one more.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from ._db import LocalStateError, StateDB

__all__ = [
    "COLUMNS",
    "HOURS_KEPT",
    "HOUR_COLUMNS",
    "Key",
    "RedisTally",
    "SqliteTally",
    "Tallies",
    "Tally",
]

COLUMNS = ("hits", "misses", "revalidated", "stale", "refused", "saved", "spent")
HOUR_COLUMNS = ("requests", *COLUMNS)
Key = tuple[str, str, str, str]  # bucket, profile, kind, name
Notes = Mapping[str, Mapping[str, object]]  # profile -> column -> value
HOURS_KEPT = 8 * 24
DAY_TTL = 40 * 86400
HOUR_TTL = HOURS_KEPT * 3600
_SEP = "\x1f"


@attrs.frozen
class Tallies:
    """What a status read finds: day rows, hour rows and each profile's notes."""

    days: list[tuple[str, str, dict[str, int]]]  # (day, profile, counts)
    hours: list[tuple[Key, dict[str, int]]]
    notes: dict[str, tuple[Any, Any]]  # profile -> (last_error, last_error_at)


def is_hour(bucket: str) -> bool:
    return "T" in bucket


class Tally(abc.ABC):
    @abc.abstractmethod
    def add(self, counts: Mapping[Key, Mapping[str, int]], notes: Notes) -> None:
        """Add one batch (a busy or broken store loses it, no more)."""

    def read(self, days: list[str], hours: list[str]) -> Tallies | None:
        """The buckets of ``days`` and ``hours``; None: read the state file."""
        return None

    def close(self) -> None:  # noqa: B027 - stores with resources override it
        pass


class SqliteTally(Tally):
    def __init__(self, db: StateDB, *, own: bool = False) -> None:
        self._db, self._own = db, own

    def add(self, counts: Mapping[Key, Mapping[str, int]], notes: Notes) -> None:
        days = [
            (k[0], k[1], *(v.get(c, 0) for c in COLUMNS))
            for k, v in counts.items()
            if not is_hour(k[0])
        ]
        hours = [
            (*k, *(v.get(c, 0) for c in HOUR_COLUMNS)) for k, v in counts.items() if is_hour(k[0])
        ]
        with contextlib.suppress(LocalStateError), self._db.transaction() as cur:
            cur.executemany(
                f"INSERT INTO counters (day, profile, {', '.join(COLUMNS)})"
                f" VALUES (?, ?{', ?' * len(COLUMNS)}) ON CONFLICT (day, profile) DO UPDATE SET"
                + ",".join(f" {c} = {c} + excluded.{c}" for c in COLUMNS),
                days,
            )
            cur.executemany(
                f"INSERT INTO hourly (hour, profile, kind, name, {', '.join(HOUR_COLUMNS)})"
                f" VALUES (?, ?, ?, ?{', ?' * len(HOUR_COLUMNS)})"
                " ON CONFLICT (hour, profile, kind, name) DO UPDATE SET"
                + ",".join(f" {c} = {c} + excluded.{c}" for c in HOUR_COLUMNS),
                hours,
            )
            if hours:
                oldest = min(k[0] for k in counts if is_hour(k[0]))
                cur.execute("DELETE FROM hourly WHERE hour < ?", (_hours_before(oldest),))
            for profile, note in notes.items():
                cur.execute(
                    "INSERT INTO profile_status (profile) VALUES (?) ON CONFLICT DO NOTHING",
                    (profile,),
                )
                for column, noted in note.items():
                    cur.execute(
                        f"UPDATE profile_status SET {column} = ? WHERE profile = ?",
                        (noted, profile),
                    )

    def close(self) -> None:
        if self._own:
            self._db.close()


def _hours_before(hour: str) -> str:
    """The bucket HOURS_KEPT hours before ``hour`` (hourly rows older are dropped)."""
    moment = datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=UTC)
    return (moment - timedelta(hours=HOURS_KEPT)).strftime("%Y-%m-%dT%H")


class RedisTally(Tally):
    """The counters in Redis (see the module docstring); errors lose the batch."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._client, self._prefix = client, prefix

    def add(self, counts: Mapping[Key, Mapping[str, int]], notes: Notes) -> None:
        import redis

        pipe = self._client.pipeline(transaction=False)
        buckets: set[str] = set()
        for (bucket, profile, kind, name), row in counts.items():
            key = f"{self._prefix}:counts:{bucket}"
            buckets.add(bucket)
            for column, value in row.items():
                if value:
                    pipe.hincrby(key, _SEP.join((profile, kind, name, column)), value)
        for bucket in buckets:
            ttl = HOUR_TTL if is_hour(bucket) else DAY_TTL
            pipe.expire(f"{self._prefix}:counts:{bucket}", ttl)
        if notes:
            name = f"{self._prefix}:notes"
            mapping = {
                _SEP.join((profile, column)): "" if value is None else str(value)
                for profile, note in notes.items()
                for column, value in note.items()
            }
            pipe.hset(name, mapping=mapping)
            pipe.expire(name, DAY_TTL)
        with contextlib.suppress(redis.RedisError):
            pipe.execute()

    def read(self, days: list[str], hours: list[str]) -> Tallies:
        """The buckets of ``days`` and ``hours``, and the notes, in one round trip."""
        import redis

        pipe = self._client.pipeline(transaction=False)
        for bucket in (*days, *hours):
            pipe.hgetall(f"{self._prefix}:counts:{bucket}")
        pipe.hgetall(f"{self._prefix}:notes")
        try:
            *found, noted = pipe.execute()
        except redis.RedisError:
            return Tallies([], [], {})
        day_rows: list[tuple[str, str, dict[str, int]]] = []
        hour_rows: list[tuple[Key, dict[str, int]]] = []
        for bucket, fields in zip((*days, *hours), found, strict=True):
            rows: dict[Key, dict[str, int]] = {}
            for field, value in fields.items():
                profile, kind, name, column = _text(field).split(_SEP)
                rows.setdefault((bucket, profile, kind, name), {})[column] = int(value)
            for key, row in sorted(rows.items()):
                if is_hour(bucket):
                    hour_rows.append((key, {c: row.get(c, 0) for c in HOUR_COLUMNS}))
                else:
                    day_rows.append((bucket, key[1], {c: row.get(c, 0) for c in COLUMNS}))
        return Tallies(day_rows, hour_rows, _notes(noted))


def _notes(noted: Mapping[Any, Any]) -> dict[str, tuple[Any, Any]]:
    fields: dict[str, dict[str, str]] = {}
    for field, value in noted.items():
        profile, _, column = _text(field).rpartition(_SEP)
        fields.setdefault(profile, {})[column] = _text(value)
    return {
        profile: (
            note.get("last_error") or None,
            float(note["last_error_at"]) if note.get("last_error_at") else None,
        )
        for profile, note in fields.items()
    }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
