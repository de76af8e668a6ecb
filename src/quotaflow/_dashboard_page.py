"""The dashboard's page: one self-contained HTML document (inline CSS, inline SVG charts,
a few lines of script that fetch the page again and swap the numbers in). Strictly
private."""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import UTC, datetime

from ._dashboard_assets import CSS, SCRIPT
from ._dashboard_charts import (
    DAYS,
    hourly_chart,
    quota_chart,
    ratio_chart,
    refused_chart,
    spent_chart,
    window,
)
from ._state._counters import day_of
from ._status import ProfileStatus, circuit_text, pause_text

__all__ = ["REFRESH_SECONDS", "idle", "render_page"]

REFRESH_SECONDS = 5.0
TODAY_FIELDS = ("hits", "misses", "revalidated", "stale", "refused")


def _text(value: object) -> str:
    return "-" if value is None else html.escape(str(value))


def _field(name: str, value: object, css: str = "") -> str:
    klass = f' class="{css}"' if css else ""
    return f'<dd data-field="{name}"{klass}>{_text(value)}</dd>'


def _left(status: ProfileStatus) -> object:
    """The remaining quota; "unknown" for a lost ledger not synced yet."""
    if status.remaining is None and status.total is not None:
        return "unknown"
    return status.remaining


def _meter(status: ProfileStatus) -> str:
    if not status.total or status.used is None:
        return ""
    used = min(max(status.used / status.total, 0.0), 1.0)
    low = " low" if (status.remaining or 0) <= status.total * 0.1 else ""
    return f'<div class="meter{low}"><span style="width:{used:.1%}"></span></div>'


def idle(status: ProfileStatus) -> bool:
    """Nothing to look at: no traffic in the charts' days, nothing spent this period,
    and a gate with nothing to say. Shown collapsed, after the others."""
    return (
        not status.days
        and not status.used
        and status.circuit == "closed"
        and not status.failures
        and not status.paused
        and not status.last_error
    )


def _forecast(status: ProfileStatus) -> str | None:
    if status.forecast_at_reset is None:
        return None
    if status.runs_out_at is not None:
        return f"runs out {status.runs_out_at[:16].replace('T', ' ')}"
    return f"{status.forecast_at_reset} left at the reset"


def _stats(status: ProfileStatus) -> str:
    today = status.today
    resets = status.resets_at[:10] if status.resets_at else None
    error = f"{status.last_error} at {status.last_error_at or '?'}" if status.last_error else None
    return f"""
  <div class="stats">
    <div class="group"><h3>Quota</h3>{_meter(status)}
      <dl><dt>used</dt>{_field("used", status.used)}
      <dt>remaining</dt>{_field("remaining", _left(status))}
      <dt>total</dt>{_field("total", status.total)}
      <dt>resets</dt>{_field("resets_at", resets)}
      <dt>forecast</dt>{_field("forecast", _forecast(status))}</dl></div>
    <div class="group"><h3>Short window</h3>
      <dl><dt>rate</dt>{_field("rate", status.rate)}
      <dt>tokens now</dt>{_field("tokens", status.tokens)}</dl></div>
    <div class="group"><h3>Today</h3>
      <dl>{"".join(f"<dt>{k}</dt>{_field(k, today.get(k, 0))}" for k in TODAY_FIELDS)}</dl></div>
    <div class="group"><h3>Cache &amp; health</h3>
      <dl><dt>units saved</dt>{_field("saved", today.get("saved", 0))}
      <dt>units spent</dt>{_field("spent", today.get("spent", 0))}
      <dt>last error</dt>{_field("last_error", error, "error" if error else "")}
      <dt>circuit</dt>{_field("circuit_state", circuit_text(status))}
      <dt>paused</dt>{_field("paused", pause_text(status))}</dl></div>
  </div>"""


def _charts(status: ProfileStatus, days: list[str]) -> str:
    quota = ""
    if status.quota_line:
        quota = f"""
  <div class="charts wide">
    <figure><figcaption>Quota left this period, and where the burn rate so far takes it
      by the reset</figcaption>{quota_chart(status)}
      <div class="legend"><i></i>left (from each day's spending)<i class="forecast"></i>
      forecast<i class="pace"></i>an even pace</div></figure>
  </div>"""
    return f"""{quota}
  <div class="charts">
    <figure><figcaption>Quota spent per day, last {DAYS} days</figcaption>
      {spent_chart(status.days, days)}</figure>
    <figure><figcaption>Hit ratio per day: hits / (hits + misses + revalidated + stale)
      </figcaption>{ratio_chart(status.days, days)}</figure>
    <figure><figcaption>Requests refused per day (quota, rate or circuit)</figcaption>
      {refused_chart(status.days, days)}</figure>
  </div>"""


BREAKDOWN = ("requests", "spent", "refused")
ENDPOINTS_SHOWN = 8


def _breakdown(title: str, kind: str, rows: dict[str, dict[str, int]]) -> str:
    """A small table of today's counts by priority or endpoint, most spent first."""
    ordered = sorted(rows.items(), key=lambda item: -item[1].get("spent", 0))
    shown, hidden = ordered[:ENDPOINTS_SHOWN], len(ordered) - ENDPOINTS_SHOWN
    cells = "".join(
        f'<tr data-{kind}="{html.escape(name)}"><td>{html.escape(name)}</td>'
        + "".join(f"<td>{counts.get(k, 0)}</td>" for k in BREAKDOWN)
        + "</tr>"
        for name, counts in shown
    )
    more = f'<tr><td colspan="4">and {hidden} more</td></tr>' if hidden > 0 else ""
    head = "".join(f"<th>{k}</th>" for k in BREAKDOWN)
    return (
        f'<figure><figcaption>{title}</figcaption><table class="breakdown">'
        f"<tr><th></th>{head}</tr>{cells}{more}</table></figure>"
    )


def _today(status: ProfileStatus) -> str:
    """Today by hour, priority and endpoint: only what the state records."""
    parts = []
    if status.hours:
        parts.append(
            "<figure><figcaption>Quota spent per hour today (UTC)</figcaption>"
            f"{hourly_chart(status.hours)}</figure>"
        )
    if status.by_priority:
        parts.append(_breakdown("Today by priority", "priority", status.by_priority))
    if status.by_endpoint:
        parts.append(_breakdown("Today by endpoint", "endpoint", status.by_endpoint))
    return f'\n  <div class="charts">{"".join(parts)}</div>' if parts else ""


def _profile(status: ProfileStatus, days: list[str]) -> str:
    name = html.escape(status.profile)
    circuit = html.escape(status.circuit)
    # The gate every process on the state goes by: the API's pause, the shared breaker.
    paused = ' <span class="badge paused">paused</span>' if status.paused else ""
    return f"""
<section class="profile" data-profile="{name}">
  <h2>{name} <span class="badge {circuit}" data-field="circuit">{circuit}</span>{paused}</h2>
  {_stats(status)}{_charts(status, days)}{_today(status)}
</section>"""


def _idle(status: ProfileStatus, days: list[str]) -> str:
    name = html.escape(status.profile)
    quota = "" if status.total is None else f"; {_left(status)} of {status.total} left"
    return (
        f'<details class="idle" data-idle="{name}"><summary><b>{name}</b>: no requests in '
        f"{DAYS} days{quota}</summary>{_profile(status, days)}</details>"
    )


def render_page(
    statuses: Iterable[ProfileStatus], now: float, refresh: float = REFRESH_SECONDS
) -> str:
    """The whole page: nothing is loaded from anywhere else."""
    days = window(now)
    shown = list(statuses)
    busy = [s for s in shown if not idle(s)]
    resting = [s for s in shown if idle(s)]
    sections = "".join(_profile(s, days) for s in busy)
    if resting:
        sections += f'<h2 class="idle">Idle ({len(resting)})</h2>'
        sections += "".join(_idle(s, days) for s in resting)
    if not shown:
        sections = '<p class="empty">No profiles with a quota, a rate or traffic yet.</p>'
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    every = f"refreshes every {refresh:g} s" if refresh > 0 else "no auto-refresh"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>quotaflow dashboard</title><style>{CSS}</style></head>
<body>
<header><h1>quotaflow dashboard</h1>
<span class="meta"><span id="updated" data-now="{day_of(now)}">updated {stamp}</span>;
{every}; <a href="status.json">status.json</a></span></header>
<main id="profiles">{sections}</main>
<script>{SCRIPT % int(refresh * 1000)}</script>
</body></html>
"""
