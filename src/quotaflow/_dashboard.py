"""``quotaflow dashboard``: the status view as one HTML page on a local port. Strictly
private.

Standard library only: a ThreadingHTTPServer answers ``/`` with a self-contained page
(inline CSS, charts drawn here as inline SVG, a few lines of script that fetch the page
again every few seconds and swap the numbers in) and ``/status.json`` with the same
data as ``quotaflow status --json``. Every request reads the state afresh.
"""

from __future__ import annotations

import html
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ._profiles import ApiProfile
from ._state._counters import day_of
from ._status import ProfileStatus, circuit_text, pause_text

__all__ = ["render_page", "serve"]

DAYS = 30
REFRESH_SECONDS = 5.0
TODAY_FIELDS = ("hits", "misses", "revalidated", "stale", "refused")
# Answers that came from somewhere: the hit ratio's denominator (refused ones never did).
ANSWERED = ("hits", "misses", "revalidated", "stale")

# Chart geometry, in SVG user units.
WIDTH, HEIGHT = 460, 150
LEFT, RIGHT, TOP, BOTTOM = 34, 8, 10, 20

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
"""

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
      ["profiles", "updated"].forEach(function (id) {
        var now = fresh.getElementById(id), here = document.getElementById(id);
        if (now && here) here.replaceWith(document.importNode(now, true));
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


def _window(now: float) -> list[str]:
    """The last DAYS days, oldest first, ending today (UTC)."""
    return [day_of(now - (DAYS - 1 - n) * 86400) for n in range(DAYS)]


def _frame(days: list[str], ticks: list[tuple[float, str]]) -> tuple[list[str], float]:
    """Grid lines with labels on the y axis, a few dates on the x axis; the slot width."""
    slot = (WIDTH - LEFT - RIGHT) / len(days)
    parts = []
    for y, label in ticks:
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(f'<text x="{LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">{label}</text>')
    for n in (0, len(days) // 2, len(days) - 1):
        x = LEFT + slot * (n + 0.5)
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 5}" text-anchor="middle">{days[n][5:]}</text>'
        )
    return parts, slot


def _y(fraction: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - fraction)


def _svg(chart: str, label: str, parts: list[str]) -> str:
    return (
        f'<svg data-chart="{chart}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{label}">{"".join(parts)}</svg>'
    )


def _spent_chart(history: list[dict[str, Any]], days: list[str]) -> str:
    """One bar per day with traffic: the quota units spent that day."""
    spent = {row["day"]: int(row["spent"]) for row in history if row["day"] in days}
    top = max([*spent.values(), 2])
    top += top % 2  # even, so the middle line is a whole number of units
    parts, slot = _frame(days, [(_y(1), str(top)), (_y(0.5), str(top // 2)), (_y(0), "0")])
    for n, day in enumerate(days):
        if day not in spent:
            continue
        value = spent[day]
        y = _y(value / top)
        klass = "bar today" if n == len(days) - 1 else "bar"
        parts.append(
            f'<rect class="{klass}" data-day="{day}" data-value="{value}" '
            f'x="{LEFT + slot * n + slot * 0.15:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{_y(0) - y:.1f}"><title>{day}: {value} spent</title></rect>'
        )
    if not spent:
        parts.append(_nothing())
    return _svg("spent", "quota spent per day", parts)


def _ratio_chart(history: list[dict[str, Any]], days: list[str]) -> str:
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


def _nothing() -> str:
    return (
        f'<text class="none" x="{(WIDTH + LEFT - RIGHT) / 2:.0f}" y="{HEIGHT / 2:.0f}" '
        'text-anchor="middle">no traffic yet</text>'
    )


def _meter(status: ProfileStatus) -> str:
    if not status.total or status.used is None:
        return ""
    used = min(max(status.used / status.total, 0.0), 1.0)
    low = " low" if (status.remaining or 0) <= status.total * 0.1 else ""
    return f'<div class="meter{low}"><span style="width:{used:.1%}"></span></div>'


def _profile(status: ProfileStatus, days: list[str]) -> str:
    name = html.escape(status.profile)
    circuit = html.escape(status.circuit)
    today = status.today
    resets = status.resets_at[:10] if status.resets_at else None
    error = f"{status.last_error} at {status.last_error_at or '?'}" if status.last_error else None
    # The gate every process on the state goes by: the API's pause, the shared breaker.
    paused = ' <span class="badge paused">paused</span>' if status.paused else ""
    return f"""
<section class="profile" data-profile="{name}">
  <h2>{name} <span class="badge {circuit}" data-field="circuit">{circuit}</span>{paused}</h2>
  <div class="stats">
    <div class="group"><h3>Quota</h3>{_meter(status)}
      <dl><dt>used</dt>{_field("used", status.used)}
      <dt>remaining</dt>{_field("remaining", status.remaining)}
      <dt>total</dt>{_field("total", status.total)}
      <dt>resets</dt>{_field("resets_at", resets)}</dl></div>
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
  </div>
  <div class="charts">
    <figure><figcaption>Quota spent per day, last {DAYS} days</figcaption>
      {_spent_chart(status.days, days)}</figure>
    <figure><figcaption>Hit ratio per day: hits / (hits + misses + revalidated + stale)
      </figcaption>{_ratio_chart(status.days, days)}</figure>
  </div>
</section>"""


def render_page(
    statuses: Iterable[ProfileStatus], now: float, refresh: float = REFRESH_SECONDS
) -> str:
    """The whole page: nothing is loaded from anywhere else."""
    days = _window(now)
    sections = "".join(_profile(s, days) for s in statuses) or (
        '<p class="empty">No profiles with a quota, a rate or traffic yet.</p>'
    )
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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    snapshot: Callable[[], tuple[float, list[ProfileStatus]]]
    refresh: float
    names: frozenset[str]  # what Host may say (see _Handler._trusted_host)


class _Server6(_Server):
    address_family = socket.AF_INET6


CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self'"
)


def _host(header: str) -> tuple[str, int | None] | None:
    """The name (lower case, IPv6 without brackets) and port of a ``Host`` header; None
    when it cannot be read."""
    header = header.strip().lower()
    if header.startswith("["):  # an IPv6 literal: [::1] or [::1]:8765
        name, bracket, rest = header[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else None
    else:
        name, colon, port_text = header.partition(":")
        port = port_text if colon else None
    if port is not None and not (port.isascii() and port.isdigit()):
        return None
    return name, None if port is None else int(port)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "quotaflow-dashboard"

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        """What GET would answer, headers only (RFC 9110 §9.3.2)."""
        self._answer(body=False)

    def _trusted_host(self) -> bool:
        """DNS rebinding defence: a page on another site that resolves its own name to
        127.0.0.1 reaches this port, but its requests still carry that name in ``Host``.
        Answer only to the loopback names and the address the server is bound to, with
        this server's port or none."""
        found = _host(self.headers.get("Host") or "")
        if found is None:
            return False
        name, port = found
        return name in self.server.names and port in (None, self.server.server_address[1])

    def _answer(self, *, body: bool) -> None:
        if not self._trusted_host():
            # 421 Misdirected Request (RFC 9110 §15.5.20): not a name this server answers to.
            self._send(
                HTTPStatus.MISDIRECTED_REQUEST,
                "text/plain",
                b"this dashboard answers only to localhost, 127.0.0.1, [::1] "
                b"or the address it listens on\n",
                body=body,
            )
            return
        path = self.path.split("?", 1)[0]
        if path not in ("/", "/index.html", "/status.json"):
            self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n", body=body)
            return
        try:
            now, statuses = self.server.snapshot()
        except Exception as exc:  # a broken state must not kill the server
            message = f"cannot read the state: {type(exc).__name__}: {exc}\n"
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain", message.encode(), body=body)
            return
        if path == "/status.json":
            text = json.dumps([s.as_dict() for s in statuses], indent=2)
            self._send(HTTPStatus.OK, "application/json", text.encode(), body=body)
        else:
            page = render_page(statuses, now, self.server.refresh)
            self._send(HTTPStatus.OK, "text/html", page.encode(), body=body)

    def _send(self, status: HTTPStatus, kind: str, content: bytes, *, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", CSP)
        self.end_headers()
        if body:
            self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the page polls every few seconds."""


def serve(
    state_dir: Path | None,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    profiles: Iterable[ApiProfile] | None = None,
    redis_url: str | None = None,
    redis_prefix: str = "quotaflow",
    refresh: float = REFRESH_SECONDS,
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start the dashboard in a daemon thread; port 0 picks a free one.

    Stop it with ``server.shutdown(); server.server_close()``. The state is read once
    here, so a bad configuration fails now rather than on the first page.
    """
    from ._cli_status import collect

    chosen = list(profiles) if profiles is not None else None

    def snapshot() -> tuple[float, list[ProfileStatus]]:
        now = time.time()
        return now, collect(state_dir, redis_url, redis_prefix, chosen)

    snapshot()
    server = (_Server6 if ":" in host else _Server)((host, port), _Handler)
    server.snapshot = snapshot
    server.refresh = refresh
    bound = server.server_address[0]
    server.names = frozenset(
        name.strip("[]").lower()
        for name in ("localhost", "127.0.0.1", "::1", host, str(bound))
        if name not in ("", "0.0.0.0", "::")  # "every address" is no name to answer to
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="quotaflow-dashboard"
    )
    thread.daemon = True
    thread.start()
    return server, thread


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    shown = host.decode() if isinstance(host, bytes) else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def run(args: Any) -> int:
    """``quotaflow dashboard``: serve until Ctrl-C."""
    server, thread = serve(
        args.state_dir,
        args.host,
        args.port,
        redis_url=args.redis_url,
        redis_prefix=args.redis_prefix,
        refresh=args.refresh,
    )
    print(f"quotaflow dashboard on {url_of(server)} (Ctrl-C stops it)", flush=True)
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.shutdown()
        server.server_close()
    return 0
