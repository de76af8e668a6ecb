"""``quotaflow status``: the rate-limit dashboard in a terminal. Strictly private."""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from ._client import _backend, _state_dir
from ._counters import COLUMNS
from ._profiles import ApiProfile, resolve_plugins
from ._status import ProfileStatus, circuit_text, pause_text, read_status


def collect(
    state_dir: Path | None,
    redis_url: str | None,
    redis_prefix: str,
    profiles: Iterable[ApiProfile] | None = None,
) -> list[ProfileStatus]:
    """The status of every profile, from the state directory (and Redis, if given)."""
    registry, _ = resolve_plugins(profiles, plugins=True)
    directory = _state_dir(state_dir)
    backend = _backend(directory, registry, redis_url, redis_prefix, "closed")
    try:
        return read_status(directory, registry, backend, time.time())
    finally:
        backend.close()


def _quota(status: ProfileStatus) -> str:
    if status.total is None:
        return "-"
    return f"{status.used}/{status.total} used, {status.remaining} left"


def _plain(statuses: list[ProfileStatus], out: TextIO) -> None:
    if not statuses:
        print("No profiles with a quota, a rate or traffic yet.", file=out)
    for s in statuses:
        today = ", ".join(f"{k} {s.today[k]}" for k in COLUMNS if k not in ("saved", "spent"))
        print(f"{s.profile}", file=out)
        print(f"  quota      {_quota(s)}; resets {s.resets_at or '-'}", file=out)
        print(
            f"  rate       {s.rate or '-'}; tokens now {'-' if s.tokens is None else s.tokens}",
            file=out,
        )
        print(f"  today      {today}", file=out)
        print(
            f"  saved      {s.today['saved']} units by the cache (spent {s.today['spent']})",
            file=out,
        )
        error = f"{s.last_error} at {s.last_error_at}" if s.last_error else "none"
        print(f"  last error {error}", file=out)
        print(f"  circuit    {circuit_text(s)}; paused {pause_text(s)}", file=out)


def _cell_circuit(status: ProfileStatus) -> str:
    """The circuit in a table cell: the same facts as circuit_text, shorter."""
    text = status.circuit
    if status.circuit == "open":
        text = f"open {math.ceil(status.open_seconds_left or 0)}s"
    elif status.probe_until is not None:
        text = "half-open, probing"
    return f"{text} ({status.failures} failed)" if status.failures else text


def _cell_pause(status: ProfileStatus) -> str:
    if not status.paused or status.paused_until is None:
        return "-"
    return f"{math.ceil(status.pause_seconds_left or 0)}s, to {status.paused_until[11:]}"


def _rich_table(statuses: list[ProfileStatus]) -> Any:
    from rich.table import Table

    table = Table(title="quotaflow status", title_justify="left")
    table.add_column("profile")
    table.add_column("quota used", justify="right")
    table.add_column("left", justify="right")
    table.add_column("resets")
    table.add_column("tokens", justify="right")
    table.add_column("today: hit/miss/reval/stale/refused", justify="right")
    table.add_column("saved", justify="right")
    table.add_column("last error")
    table.add_column("circuit")
    table.add_column("paused")
    for s in statuses:
        t = s.today
        table.add_row(
            s.profile,
            "-" if s.total is None else f"{s.used}/{s.total}",
            "-" if s.remaining is None else str(s.remaining),
            (s.resets_at or "-")[:10],
            "-" if s.tokens is None else str(s.tokens),
            "/".join(str(t[k]) for k in ("hits", "misses", "revalidated", "stale", "refused")),
            str(t["saved"]),
            f"{s.last_error} {s.last_error_at or ''}".strip() if s.last_error else "-",
            _cell_circuit(s),
            _cell_pause(s),
        )
    return table


def run(args: Any, out: TextIO | None = None) -> int:
    out = out or sys.stdout

    def snapshot() -> list[ProfileStatus]:
        return collect(args.state_dir, args.redis_url, args.redis_prefix)

    if args.json:
        print(json.dumps([s.as_dict() for s in snapshot()], indent=2), file=out)
        return 0
    try:
        from rich.console import Console
        from rich.live import Live
    except ImportError:  # the cli extra is not installed: plain text does the job
        while True:
            _plain(snapshot(), out)
            if not args.watch:
                return 0
            time.sleep(args.watch)
    # Wide enough for every column even when the output is not a terminal.
    console = Console(file=out, width=max(shutil.get_terminal_size().columns, 132))
    if not args.watch:
        console.print(_rich_table(snapshot()))
        return 0
    try:
        with Live(_rich_table(snapshot()), console=console, refresh_per_second=4) as live:
            while True:
                time.sleep(args.watch)
                live.update(_rich_table(snapshot()))
    except KeyboardInterrupt:
        return 0
