"""The dashboard's charts, drawn here as inline SVG (no script, nothing loaded). Strictly
private.

Each chart marks its data points with ``data-day``/``data-at`` and ``data-value``, so
tests (and curious readers) can check what is drawn against ``quotaflow status --json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ._state._counters import day_of
from ._status import ProfileStatus

__all__ = [
    "hourly_chart",
    "quota_chart",
    "ratio_chart",
    "refused_chart",
    "spent_chart",
    "window",
]

DAYS = 30
# Answers that came from somewhere: the hit ratio's denominator (refused ones never did).
ANSWERED = ("hits", "misses", "revalidated", "stale")

# Chart geometry, in SVG user units.
WIDTH, HEIGHT = 460, 150
WIDE = 940  # the quota chart spans the section
LEFT, RIGHT, TOP, BOTTOM = 34, 8, 10, 20


def window(now: float) -> list[str]:
    """The last DAYS days, oldest first, ending today (UTC)."""
    return [day_of(now - (DAYS - 1 - n) * 86400) for n in range(DAYS)]


def _y(fraction: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - fraction)


def _grid(ticks: Sequence[tuple[float, str]], width: int = WIDTH) -> list[str]:
    parts = []
    for y, label in ticks:
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(f'<text x="{LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">{label}</text>')
    return parts


def _frame(days: list[str], ticks: list[tuple[float, str]]) -> tuple[list[str], float]:
    """Grid lines with labels on the y axis, a few dates on the x axis; the slot width."""
    slot = (WIDTH - LEFT - RIGHT) / len(days)
    parts = _grid(ticks)
    for n in (0, len(days) // 2, len(days) - 1):
        x = LEFT + slot * (n + 0.5)
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 5}" text-anchor="middle">{days[n][5:]}</text>'
        )
    return parts, slot


def _svg(chart: str, label: str, parts: list[str], width: int = WIDTH) -> str:
    return (
        f'<svg data-chart="{chart}" viewBox="0 0 {width} {HEIGHT}" role="img" '
        f'aria-label="{label}">{"".join(parts)}</svg>'
    )


def _nothing(text: str = "no traffic yet", width: int = WIDTH) -> str:
    return (
        f'<text class="none" x="{(width + LEFT - RIGHT) / 2:.0f}" y="{HEIGHT / 2:.0f}" '
        f'text-anchor="middle">{text}</text>'
    )


def _even_top(values: Sequence[int]) -> int:
    top = max([*values, 2])
    return top + top % 2  # even, so the middle line is a whole number of units


def _bars(chart: str, label: str, values: dict[str, int], days: list[str], unit: str) -> str:
    """One bar per day with a value: ``values`` by day."""
    top = _even_top(list(values.values()))
    parts, slot = _frame(days, [(_y(1), str(top)), (_y(0.5), str(top // 2)), (_y(0), "0")])
    for n, day in enumerate(days):
        if day not in values:
            continue
        value = values[day]
        y = _y(value / top)
        klass = "bar today" if n == len(days) - 1 else "bar"
        parts.append(
            f'<rect class="{klass}" data-day="{day}" data-value="{value}" '
            f'x="{LEFT + slot * n + slot * 0.15:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{_y(0) - y:.1f}"><title>{day}: {value} {unit}</title></rect>'
        )
    if not values:
        parts.append(_nothing())
    return _svg(chart, label, parts)


def spent_chart(history: list[dict[str, Any]], days: list[str]) -> str:
    """One bar per day with traffic: the quota units spent that day."""
    spent = {row["day"]: int(row["spent"]) for row in history if row["day"] in days}
    return _bars("spent", "quota spent per day", spent, days, "spent")


def refused_chart(history: list[dict[str, Any]], days: list[str]) -> str:
    """One bar per day with refusals: requests the quota, a rate or the circuit refused."""
    refused = {
        row["day"]: int(row["refused"]) for row in history if row["day"] in days and row["refused"]
    }
    svg = _bars("refused", "requests refused per day", refused, days, "refused")
    return svg if refused else svg.replace("no traffic yet", "nothing refused")


def hourly_chart(hours: list[dict[str, Any]]) -> str:
    """Today's quota units spent per UTC hour (where the state records hours)."""
    slots = [f"{n:02d}" for n in range(24)]
    spent = {str(row["hour"])[-2:]: int(row.get("spent", 0)) for row in hours}
    top = _even_top(list(spent.values()))
    parts = _grid([(_y(1), str(top)), (_y(0.5), str(top // 2)), (_y(0), "0")])
    slot = (WIDTH - LEFT - RIGHT) / 24
    for n in (0, 6, 12, 18, 23):
        x = LEFT + slot * (n + 0.5)
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 5}" text-anchor="middle">{n:02d}h</text>')
    for n, hour in enumerate(slots):
        if hour not in spent:
            continue
        y = _y(spent[hour] / top)
        parts.append(
            f'<rect class="bar" data-hour="{hour}" data-value="{spent[hour]}" '
            f'x="{LEFT + slot * n + slot * 0.15:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{_y(0) - y:.1f}"><title>{hour}h: {spent[hour]} spent</title></rect>'
        )
    if not spent:
        parts.append(_nothing())
    return _svg("hourly", "quota spent per hour today", parts)


def ratio_chart(history: list[dict[str, Any]], days: list[str]) -> str:
    """hits / (hits + misses + revalidated + stale) per day, a point per day with answers."""
    ratios: dict[str, float] = {}
    for row in history:
        answered = sum(int(row[k]) for k in ANSWERED)
        if row["day"] in days and answered:
            ratios[row["day"]] = int(row["hits"]) / answered
    parts, slot = _frame(days, [(_y(1), "100%"), (_y(0.5), "50%"), (_y(0), "0%")])
    points = [
        (n, LEFT + slot * (n + 0.5), _y(ratios[day]), day)
        for n, day in enumerate(days)
        if day in ratios
    ]
    # Consecutive days are joined; a day without answers breaks the line.
    runs: list[list[str]] = []
    for index, (n, x, y, _) in enumerate(points):
        if not index or points[index - 1][0] != n - 1:
            runs.append([])
        runs[-1].append(f"{x:.1f},{y:.1f}")
    parts.extend(
        f'<polyline class="line" points="{" ".join(run)}"/>' for run in runs if len(run) > 1
    )
    for _, x, y, day in points:
        parts.append(
            f'<circle class="dot" data-day="{day}" data-value="{ratios[day]:.4f}" '
            f'cx="{x:.1f}" cy="{y:.1f}" r="3"><title>{day}: {ratios[day]:.0%} hits</title>'
            "</circle>"
        )
    if not points:
        parts.append(_nothing())
    return _svg("hit-ratio", "hit ratio per day", parts)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _label(moment: float, span: float) -> str:
    layout = "%H:%M" if span <= 2 * 86400 else "%m-%d"
    return datetime.fromtimestamp(moment, UTC).strftime(layout)


class _Axes:
    """Time from the period's start to its reset on x, units 0..top on y."""

    def __init__(self, start: float, end: float, top: int) -> None:
        self.start, self.end, self.top = start, max(end, start + 1), max(top, 1)

    def x(self, moment: float) -> float:
        share = (moment - self.start) / (self.end - self.start)
        return LEFT + (WIDE - LEFT - RIGHT) * min(max(share, 0.0), 1.0)

    def y(self, units: float) -> float:
        return _y(min(max(units / self.top, 0.0), 1.0))

    def ticks(self) -> list[str]:
        top = self.top
        parts = _grid([(_y(1), str(top)), (_y(0.5), f"{top / 2:g}"), (_y(0), "0")], WIDE)
        span = self.end - self.start
        for moment, anchor in ((self.start, "start"), (self.end, "end")):
            parts.append(
                f'<text x="{self.x(moment):.1f}" y="{HEIGHT - 5}" text-anchor="{anchor}">'
                f"{_label(moment, span)}</text>"
            )
        return parts


def _forecast_end(status: ProfileStatus, end: float) -> tuple[float, float] | None:
    """Where the burn rate so far takes the quota: (moment, units), at the reset or at 0."""
    if status.forecast_at_reset is None:
        return None
    if status.runs_out_at is not None:
        return _epoch(status.runs_out_at), 0.0
    return end, float(status.forecast_at_reset)


def quota_chart(status: ProfileStatus) -> str:
    """Remaining quota over the period so far, the forecast at the burn rate to the
    reset, and an even pace (the whole quota spread over the period) for reference."""
    if not status.quota_line or status.total is None or status.resets_at is None:
        return _svg("quota", "remaining quota over the period", [_nothing("no quota", WIDE)], WIDE)
    line = [(_epoch(point["at"]), int(point["remaining"])) for point in status.quota_line]
    start, end = line[0][0], _epoch(status.resets_at)
    axes = _Axes(start, end, max(status.total, *(units for _, units in line)))
    parts = axes.ticks()
    parts.append(
        f'<line class="pace" x1="{axes.x(start):.1f}" y1="{axes.y(status.total):.1f}" '
        f'x2="{axes.x(end):.1f}" y2="{axes.y(0):.1f}"><title>an even pace</title></line>'
    )
    points = " ".join(f"{axes.x(at):.1f},{axes.y(units):.1f}" for at, units in line)
    parts.append(f'<polyline class="left" points="{points}"/>')
    now, left = line[-1]
    ahead = _forecast_end(status, end)
    if ahead is not None:
        moment, units = ahead
        parts.append(
            f'<line class="forecast" data-at="{_iso_short(moment)}" data-value="{units:g}" '
            f'x1="{axes.x(now):.1f}" y1="{axes.y(left):.1f}" x2="{axes.x(moment):.1f}" '
            f'y2="{axes.y(units):.1f}"><title>at this rate: {_forecast_text(status)}'
            "</title></line>"
        )
    for at, units in line:
        parts.append(
            f'<circle class="point" data-at="{_iso_short(at)}" data-value="{units}" '
            f'cx="{axes.x(at):.1f}" cy="{axes.y(units):.1f}" r="2">'
            f"<title>{_iso_short(at)}: {units} left</title></circle>"
        )
    parts.append(
        f'<line class="now" x1="{axes.x(now):.1f}" x2="{axes.x(now):.1f}" y1="{_y(1):.1f}" '
        f'y2="{_y(0):.1f}"/>'
    )
    label = "remaining quota over the period, with the forecast to the reset"
    return _svg("quota", label, parts, WIDE)


def _iso_short(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M")


def _forecast_text(status: ProfileStatus) -> str:
    if status.runs_out_at is not None:
        return f"runs out {status.runs_out_at[:16].replace('T', ' ')}"
    return f"{status.forecast_at_reset} left at the reset"
