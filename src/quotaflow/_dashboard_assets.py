"""The dashboard page's inline style sheet and its refresh script. Strictly private."""

from __future__ import annotations

__all__ = ["CSS", "SCRIPT"]

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
table.breakdown { border-collapse: collapse; font-size: 12px; width: 100%;
  font-variant-numeric: tabular-nums; }
table.breakdown th { color: var(--muted); font-weight: 600; text-align: right;
  padding-left: 12px; }
.charts + .charts { margin-top: 14px; }
table.breakdown td { text-align: right; padding: 2px 0 2px 12px;
  border-top: 1px solid var(--line); }
table.breakdown td:first-child { text-align: left; padding-left: 0; word-break: break-all; }
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
