"""The dashboard's page: one self-contained HTML document (inline CSS, inline SVG charts,
a few lines of script that fetch the page again and swap the numbers in). Strictly
private."""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import UTC, datetime

from ._counters import day_of
from ._dashboard_charts import DAYS, quota_chart, ratio_chart, refused_chart, spent_chart, window
from ._status import ProfileStatus, circuit_text, pause_text

__all__ = ["REFRESH_SECONDS", "idle", "render_page"]

REFRESH_SECONDS = 5.0
TODAY_FIELDS = ("hits", "misses", "revalidated", "stale", "refused")

CSS = """
:root { --ink:#1f2430; --muted:#6b7385; --line:#e3e6ee; --card:#fff; --bg:#f4f6fa;
  --accent:#3867d6; --good:#20a35a; --warn:#d98e04; --bad:#d64545; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); background: var(--bg); }
header { display: flex; align-items: baseline; gap: 16px; padding: 16px 24px;
  background: var(--card); border-bottom: 1px solid var(--line); }
header h1 { font-size: 18px; margin: 0; }
header .meta { color: var(--muted); font-size: 12px; }
body.offline header .meta::after { content: " \\2014 server not answering"; color: var(--bad); }
main { padding: 20px 24px; display: grid; gap: 20px; }
.empty { color: var(--muted); }
section.profile { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 16px 20px; }
section.profile h2 { margin: 0 0 12px; font-size: 16px; display: flex; gap: 10px;
  align-items: center; }
.badge { font-size: 11px; font-weight: 600; padding: 2px 8px; border-radius: 10px;
  text-transform: uppercase; letter-spacing: .04em; background: #e8f6ee; color: var(--good); }
.badge.open { background: #fbeaea; color: var(--bad); }
.badge.half-open, .badge.paused { background: #fdf3df; color: var(--warn); }
.stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(230px, 1fr));
  gap: 12px 28px; margin-bottom: 14px; }
.group h3 { margin: 0 0 4px; font-size: 11px; text-transform: uppercase; color: var(--muted);
  letter-spacing: .05em; font-weight: 600; }
dl { margin: 0; display: grid; grid-template-columns: auto 1fr; gap: 2px 12px; }
dt { color: var(--muted); }
dd { margin: 0; font-variant-numeric: tabular-nums; font-weight: 600; }
dd.error { font-weight: 400; color: var(--bad); word-break: break-word; }
.meter { height: 6px; background: var(--line); border-radius: 3px; margin: 6px 0 8px;
  overflow: hidden; }
.meter span { display: block; height: 100%; background: var(--accent); }
.meter.low span { background: var(--bad); }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr));
  gap: 12px 28px; }
figure { margin: 0; }
figcaption { font-size: 12px; color: var(--muted); margin-bottom: 4px; }
svg { width: 100%; height: auto; display: block; }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg text { font-size: 10px; fill: var(--muted); }
svg .bar { fill: var(--accent); }
svg .bar.today { fill: #1e3f99; }
svg .line { fill: none; stroke: var(--good); stroke-width: 2; }
svg .dot { fill: var(--good); }
svg .none { font-size: 12px; }
svg[data-chart=refused] .bar { fill: var(--bad); }
svg .left { fill: none; stroke: var(--accent); stroke-width: 2; }
svg .point { fill: var(--accent); }
svg .forecast { stroke: var(--warn); stroke-width: 2; stroke-dasharray: 5 4; }
svg .pace { stroke: var(--muted); stroke-width: 1; stroke-dasharray: 2 3; }
svg .now { stroke: var(--line); stroke-width: 1; }
.legend { font-size: 11px; color: var(--muted); margin-top: 2px; }
.legend i { display: inline-block; width: 14px; height: 0; vertical-align: middle;
  margin: 0 4px 0 10px; border-top: 2px solid var(--accent); }
.legend i.forecast { border-top: 2px dashed var(--warn); }
.legend i.pace { border-top: 1px dotted var(--muted); }
.charts.wide { grid-template-columns: 1fr; margin-bottom: 12px; }
h2.idle { font-size: 13px; color: var(--muted); margin: 4px 0 -8px; font-weight: 600;
  text-transform: uppercase; letter-spacing: .05em; }
details.idle { background: var(--card); border: 1px solid var(--line); border-radius: 10px; }
details.idle > summary { padding: 10px 20px; cursor: pointer; color: var(--muted); }
details.idle > summary b { color: var(--ink); }
details.idle > section.profile { border: 0; border-top: 1px solid var(--line);
  border-radius: 0 0 10px 10px; }
"""


# Swaps the fresh page's numbers in; idle profiles a reader opened stay open.
SCRIPT = """
(function () {
  var every = %d;
  if (!every) return;
  function tick() {
    fetch(location.pathname, {cache: "no-store"}).then(function (r) {
      if (!r.ok) throw new Error(r.status);
      return r.text();
    }).then(function (text) {
      var fresh = new DOMParser().parseFromString(text, "text/html");
      var open = Array.from(document.querySelectorAll("details[open][data-idle]"),
        function (d) { return d.dataset.idle; });
      ["profiles", "updated"].forEach(function (id) {
        var now = fresh.getElementById(id), here = document.getElementById(id);
        if (now && here) here.replaceWith(document.importNode(now, true));
      });
      document.querySelectorAll("details[data-idle]").forEach(function (d) {
        if (open.indexOf(d.dataset.idle) >= 0) d.open = true;
      });
      document.body.classList.remove("offline");
    }).catch(function () {
      document.body.classList.add("offline");
    }).then(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
"""


def _text(value: object) -> str:
    return "-" if value is None else html.escape(str(value))


def _field(name: str, value: object, css: str = "") -> str:
    klass = f' class="{css}"' if css else ""
    return f'<dd data-field="{name}"{klass}>{_text(value)}</dd>'


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
      <dt>remaining</dt>{_field("remaining", status.remaining)}
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


def _profile(status: ProfileStatus, days: list[str]) -> str:
    name = html.escape(status.profile)
    circuit = html.escape(status.circuit)
    # The gate every process on the state goes by: the API's pause, the shared breaker.
    paused = ' <span class="badge paused">paused</span>' if status.paused else ""
    return f"""
<section class="profile" data-profile="{name}">
  <h2>{name} <span class="badge {circuit}" data-field="circuit">{circuit}</span>{paused}</h2>
  {_stats(status)}{_charts(status, days)}
</section>"""


def _idle(status: ProfileStatus, days: list[str]) -> str:
    name = html.escape(status.profile)
    quota = "" if status.total is None else f"; {status.remaining} of {status.total} left"
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
