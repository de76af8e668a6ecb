"""The plugin's commands for ``quotaflow``: ``quotaflow history`` (the odds archive).

``PLUGIN.commands`` is :func:`add_commands`: the core command line calls it with its
sub-parsers, and runs the ``handler`` a parsed command names.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._history import ArchivedEvent, HistoryRow, archive_path, archived_events, history, movement

__all__ = ["add_commands", "demo"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``history`` to the ``quotaflow`` command."""
    odds_history = commands.add_parser(
        "history",
        help="list archived events, or show how one event's odds moved (from quotaflow-theoddsapi)",
        description="Reads the odds history that the quotaflow-theoddsapi plugin archives "
        "in the state directory (odds_history.db; $QUOTAFLOW_ODDS_HISTORY_DAYS days, "
        "default 90, 0 keeps none). Without EVENT_ID: the archived events (id, sport, "
        "kick-off, when their odds were stored, how many changes), filtered by --sport and "
        "--since. With EVENT_ID: per bookmaker, market and outcome of that event, each price "
        "(and point) it took, with the time it was fetched (UTC). Exit status 1 if nothing "
        "is stored (or the archive cannot be read).",
    )
    odds_history.add_argument(
        "event_id", metavar="EVENT_ID", nargs="?", help="the event's id (32 hex)"
    )
    odds_history.add_argument(
        "--sport",
        metavar="KEY",
        help="list only this sport (americanfootball_nfl) or group of sports (basketball)",
    )
    odds_history.add_argument(
        "--since",
        type=_moment,
        metavar="WHEN",
        help="list only events whose odds were stored at or after WHEN (UTC: 2026-11-29 or "
        "2026-11-29T13:00)",
    )
    odds_history.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="default: $QUOTAFLOW_HOME or ~/.cache/quotaflow",
    )
    odds_history.add_argument("--json", action="store_true", help="print JSON for machines")
    odds_history.set_defaults(handler=run_history)


def demo(state_dir: Path, out: Any, *, temporary: bool = False) -> None:
    """``quotaflow demo``: imported only when run (it needs quotaflow's demo extra)."""
    from . import _demo

    _demo.run(state_dir, out, temporary=temporary)


def _moment(text: str) -> float:
    """A date or an ISO 8601 time, UTC unless it says otherwise, as epoch seconds."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date or time such as 2026-11-29 or 2026-11-29T13:00, not {text!r}"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def run_history(args: argparse.Namespace) -> int:
    """``quotaflow history [EVENT_ID]``; the exit status."""
    if args.event_id is not None and (args.sport is not None or args.since is not None):
        print(
            "quotaflow history: --sport and --since filter the list of events; "
            "give them without an EVENT_ID",
            file=sys.stderr,
        )
        return 2
    try:
        if args.event_id is None:
            found = archived_events(args.state_dir, sport=args.sport, since=args.since)
            return _history_list(found, args)
        rows = history(args.event_id, args.state_dir)
    except sqlite3.Error as exc:  # a damaged or foreign file: one line, not a traceback
        print(
            f"quotaflow history: cannot read {archive_path(args.state_dir)}: {exc}",
            file=sys.stderr,
        )
        return 1
    if not rows:
        print(f"quotaflow history: no odds stored for event {args.event_id}", file=sys.stderr)
        return 1
    return _history_event(rows, args)


def _utc(moment: float, layout: str = "%Y-%m-%dT%H:%M:%SZ") -> str:
    return datetime.fromtimestamp(moment, UTC).strftime(layout)


def _events_json(found: list[ArchivedEvent]) -> str:
    return json.dumps(
        [
            {
                "event_id": event.event_id,
                "sport": event.sport,
                "commence_time": event.commence_time,
                "first_fetched": _utc(event.first_fetched),
                "last_fetched": _utc(event.last_fetched),
                "changes": event.changes,
                "bookmakers": event.bookmakers,
            }
            for event in found
        ],
        indent=2,
    )


def _history_list(found: list[ArchivedEvent], args: argparse.Namespace) -> int:
    if args.json:
        print(_events_json(found))
    if not found:
        filtered = " matching --sport/--since" if args.sport or args.since is not None else ""
        print(f"quotaflow history: no archived events{filtered}", file=sys.stderr)
        return 1
    if args.json:
        return 0
    sport = max(len("sport"), *(len(event.sport) for event in found))
    print(
        f"{'event':<32}  {'sport':<{sport}}  {'kick-off (UTC)':<20}  "
        f"{'odds stored (UTC)':<27}  changes"
    )
    for event in found:
        stored = f"{_utc(event.first_fetched, '%m-%d %H:%M')} .. "
        stored += _utc(event.last_fetched, "%m-%d %H:%M")
        print(
            f"{event.event_id:<32}  {event.sport:<{sport}}  {event.commence_time or '-':<20}  "
            f"{stored:<27}  {event.changes}"
        )
    count = f"{len(found)} event{'s' if len(found) > 1 else ''}"
    print(f"{count}; quotaflow history EVENT_ID shows how one moved")
    return 0


def _movement_json(rows: list[HistoryRow], moves: dict[Any, Any]) -> str:
    doc = {
        "event_id": rows[0].event_id,
        "sport": rows[0].sport,
        "commence_time": rows[0].commence_time,
        "movement": [
            {
                "bookmaker": bookmaker,
                "market": market,
                "outcome": outcome,
                "changes": [
                    {"at": datetime.fromtimestamp(at, UTC).isoformat(), "price": p, "point": pt}
                    for at, p, pt in changes
                ],
            }
            for (bookmaker, market, outcome), changes in moves.items()
        ],
    }
    return json.dumps(doc, indent=2)


def _history_event(rows: list[HistoryRow], args: argparse.Namespace) -> int:
    moves = movement(rows)
    if args.json:
        print(_movement_json(rows, moves))
        return 0
    one_day = len({datetime.fromtimestamp(row.fetched_at, UTC).date() for row in rows}) == 1
    when = "%H:%M" if one_day else "%m-%d %H:%M"
    widths = [max(len(key[i]) for key in moves) for i in range(3)]
    print(f"{rows[0].event_id}  {rows[0].sport}  kick-off {rows[0].commence_time}  (times UTC)")
    for key, changes in moves.items():
        steps = " -> ".join(
            ("" if point is None else f"{point:g} @ ")
            + f"{price:g} ({datetime.fromtimestamp(at, UTC).strftime(when)})"
            for at, price, point in changes
        )
        columns = [f"{part:<{width}}" for part, width in zip(key, widths, strict=True)]
        print("  ".join([*columns, steps]))
    return 0
