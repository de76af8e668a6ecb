"""``quotaflow status``: the rate-limit dashboard in a terminal. Strictly private."""

from __future__ import annotations

import io
import json
import math
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, TextIO

from ._profiles import ApiProfile
from ._runtime import open_backend
from ._settings import load_settings
from ._state._counters import COLUMNS
from ._state._shared import release
from ._status import ProfileStatus, circuit_text, pause_text, read_status


def collect(
    state_dir: Path | None,
    redis_url: str | None,
    redis_prefix: str,
    profiles: Iterable[ApiProfile] | None = None,
) -> list[ProfileStatus]:
    """The status of every profile, from the state directory (and Redis, if given)."""
    # The same settings a client is built from (quotaflow.toml and the environment).
    settings = load_settings(
        profiles=profiles,
        state_dir=state_dir,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        read_only=True,
    )
    directory, registry = settings.directory, settings.registry
    backend = open_backend(settings)
    try:
        return read_status(directory, registry, backend, time.time())
    finally:
        release(backend)


def _quota(status: ProfileStatus) -> str:
    if status.total is None:
        return "-"
    if status.remaining is None:  # a lost ledger, until the next answer with the count
        return f"unknown of {status.total} left"
    return f"{status.used}/{status.total} used, {status.remaining} left"


def forecast_text(status: ProfileStatus) -> str:
    """At this rate, N left at the reset / runs out on D; "-" when too early to say."""
    if status.forecast_at_reset is None:
        return "-"
    if status.runs_out_at is not None:
        return f"runs out {status.runs_out_at[:16].replace('T', ' ')} at this rate"
    return f"{status.forecast_at_reset} left at the reset at this rate"


def _cell_left(status: ProfileStatus) -> str:
    if status.remaining is None:
        return "unknown" if status.total is not None else "-"
    if status.forecast_at_reset is None:
        return str(status.remaining)
    if status.runs_out_at is not None:
        return f"{status.remaining} (out {status.runs_out_at[5:10]})"
    return f"{status.remaining} (reset {status.forecast_at_reset})"


def _plain(statuses: list[ProfileStatus], out: TextIO) -> None:
    if not statuses:
        print("No profiles with a quota, a rate or traffic yet.", file=out)
    for s in statuses:
        today = ", ".join(f"{k} {s.today[k]}" for k in COLUMNS if k not in ("saved", "spent"))
        print(f"{s.profile}", file=out)
        print(f"  quota      {_quota(s)}; resets {s.resets_at or '-'}", file=out)
        print(f"  forecast   {forecast_text(s)}", file=out)
        print(
            f"  rate       {s.rate or '-'}; tokens now {'-' if s.tokens is None else s.tokens}",
            file=out,
        )
        print(f"  today      {today}", file=out)
        print(
            f"  saved      {s.today['saved']} units by the cache (spent {s.today['spent']})",
            file=out,
        )
        if s.cold_entries or s.cold_hits:
            print(
                f"  cold       {s.cold_entries} answers kept ({s.cold_bytes} bytes);"
                f" {s.cold_hits} hits saved {s.cold_saved} units",
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


# The table's columns, most important first: (header, justify, cell). When the table is
# wider than the terminal the last ones go first, so an 80-column terminal keeps the
# quota, today's answers and the gate; the plain text view (and --json) has every field.
_Cell = Callable[[ProfileStatus], str]
_COLUMNS: tuple[tuple[str, Literal["left", "right"], _Cell], ...] = (
    ("profile", "left", lambda s: s.profile),
    ("used", "right", lambda s: "-" if s.total is None else f"{s.used}/{s.total}"),
    ("left", "right", _cell_left),
    (
        "today",
        "right",
        lambda s: "/".join(
            str(s.today[k]) for k in ("hits", "misses", "revalidated", "stale", "refused")
        ),
    ),
    ("circuit", "left", _cell_circuit),
    ("paused", "left", _cell_pause),
    ("tokens", "right", lambda s: "-" if s.tokens is None else str(s.tokens)),
    ("resets", "left", lambda s: (s.resets_at or "-")[:10]),
    ("saved", "right", lambda s: str(s.today["saved"])),
    (
        "last error",
        "left",
        lambda s: f"{s.last_error} {s.last_error_at or ''}".strip() if s.last_error else "-",
    ),
)
KEPT = 4  # profile, used, left, today: never dropped
ERROR_WIDTH = 40
CAPTION = "today: hits/misses/revalidated/stale/refused"


def _rich_table(statuses: list[ProfileStatus], width: int = 80) -> Any:
    """The status table, with as many columns as fit in ``width`` without wrapping."""
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    # Measured unbounded: rich clamps a measurement to the console's width.
    measuring = Console(width=10_000, file=io.StringIO())
    for count in range(len(_COLUMNS), KEPT - 1, -1):
        table = Table(
            title="quotaflow status", title_justify="left", caption=CAPTION, caption_justify="left"
        )
        for header, justify, _ in _COLUMNS[:count]:
            wide = header == "last error"
            table.add_column(
                header,
                justify=justify,
                max_width=ERROR_WIDTH if wide else None,
                overflow="ellipsis" if wide else "fold",
                no_wrap=wide,
            )
        for status in statuses:
            table.add_row(*(cell(status) for _, _, cell in _COLUMNS[:count]))
        if Measurement.get(measuring, measuring.options, table).maximum <= width:
            break
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

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            # rich would exit 1 on its own; the pipe closing early is no error, and
            # main() ends every command the same way.
            raise BrokenPipeError

    # The terminal's width (80 when the output is not a terminal): the table drops its
    # least needed columns to fit, rather than wrapping or running past the edge.
    console = _Console(file=out)
    if not args.watch:
        console.print(_rich_table(snapshot(), console.width))
        return 0
    try:
        with Live(
            _rich_table(snapshot(), console.width), console=console, refresh_per_second=4
        ) as live:
            while True:
                time.sleep(args.watch)
                live.update(_rich_table(snapshot(), console.width))
    except KeyboardInterrupt:
        return 0
