"""The ``quotaflow`` command's parser table: the core's sub-commands, then the plugins'.
Strictly private."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from . import _cli_cassette
from ._plugins import Plugin
from ._version import __version__

__all__ = ["DEMO_INSTALL", "build"]

DEMO_INSTALL = "pip install 'quotaflow[demo]' quotaflow-theoddsapi"


def build(plugins: Iterable[Plugin] = ()) -> argparse.ArgumentParser:
    """The ``quotaflow`` command's parser, with the sub-commands ``plugins`` add."""
    parser = argparse.ArgumentParser(
        prog="quotaflow",
        description="httpx middleware for quota-limited APIs: caching, rate limits, "
        "quotas and stale fallback in one client.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}", help="show the version"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="replay a morning of requests to The Odds API, offline",
        description="Replay an installed plugin's demo offline: quotaflow-theoddsapi's is a "
        "Sunday morning of picks generation against The Odds API, with a simulated API "
        "and a simulated clock, so nothing is sent and nothing waits. Shows cache hits, "
        "the quota each call spends, the TTL chosen per sport, and stale answers during "
        f"an outage. Needs: {DEMO_INSTALL}",
    )
    demo.add_argument(
        "--plugin",
        metavar="NAME",
        help="the plugin whose demo to run, when several installed plugins have one",
    )
    demo.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="keep the cache and quota state in DIR (new or empty) to inspect them "
        "afterwards; default: a temporary directory, deleted at the end",
    )
    status = commands.add_parser(
        "status",
        help="show each API's quota, tokens and today's requests",
        description="Per profile: quota used, remaining and when it resets, short-window "
        "tokens available now, today's requests split into hits, misses, revalidated, "
        "stale and refused, quota units saved by the cache, the last upstream error, and "
        "what every process on the state goes by: the circuit (closed, open until when, "
        "half-open), failures in a row, and the API's 429 pause (until when). Reads the "
        "state directory (and Redis if given).",
    )
    status.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="default: $QUOTAFLOW_HOME or ~/.cache/quotaflow",
    )
    status.add_argument(
        "--redis-url",
        metavar="URL",
        help="read the quota, the limiter, the pause and the circuit from this Redis "
        "(default: $QUOTAFLOW_REDIS_URL)",
    )
    status.add_argument(
        "--redis-prefix",
        default="quotaflow",
        metavar="PREFIX",
        help="Redis key prefix (default: quotaflow)",
    )
    status.add_argument("--json", action="store_true", help="print JSON for machines")
    status.add_argument(
        "--watch", type=float, metavar="SECONDS", help="refresh every SECONDS until Ctrl-C"
    )
    planning = commands.add_parser(
        "plan",
        help="say what a list of URLs would cost, without sending anything",
        description="For each URL in FILE (one per line; '-' reads standard input): "
        "whether the cache would answer it, what it would cost upstream, and whether the "
        "whole batch fits the remaining quota at the given priority. Exit status 0 if "
        "it fits, 1 if not. Nothing is sent.",
    )
    planning.add_argument("file", metavar="FILE", help="URLs, one per line ('#' comments)")
    planning.add_argument(
        "--priority", default="normal", help="critical, high, normal (default) or low"
    )
    planning.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="default: $QUOTAFLOW_HOME or ~/.cache/quotaflow",
    )
    planning.add_argument(
        "--redis-url",
        metavar="URL",
        help="read the cache and the quota from this Redis, as the clients that share it "
        "do (default: $QUOTAFLOW_REDIS_URL)",
    )
    planning.add_argument(
        "--redis-prefix",
        default="quotaflow",
        metavar="PREFIX",
        help="Redis key prefix (default: quotaflow)",
    )
    planning.add_argument("--json", action="store_true", help="print JSON for machines")
    explaining = commands.add_parser(
        "explain",
        help="say what a GET of URL would do now, and why, without sending it",
        description="The profile URL matches, how credentials partition its answers, the "
        "URL rule and freshness rules that apply, what it would cost, the quota left, and "
        "what a request would do now (answered from the cache, sent, or refused). "
        "Nothing is sent.",
    )
    explaining.add_argument("url", metavar="URL")
    explaining.add_argument(
        "--priority", default="normal", help="critical, high, normal (default) or low"
    )
    explaining.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="default: $QUOTAFLOW_HOME or ~/.cache/quotaflow",
    )
    explaining.add_argument("--redis-url", metavar="URL", help="default: $QUOTAFLOW_REDIS_URL")
    explaining.add_argument("--redis-prefix", default="quotaflow", metavar="PREFIX")
    explaining.add_argument("--json", action="store_true", help="print JSON for machines")
    dashboard = commands.add_parser(
        "dashboard",
        help="serve the status view as a web page on this machine",
        description="Serve what `quotaflow status` shows as one self-contained HTML page "
        "(no external assets): per profile the quota, tokens, today's requests, units "
        "saved, the last error and the circuit, a chart of the quota left this period "
        "with the forecast to the reset, and charts of the quota spent, the hit ratio "
        "and the refusals per day over the last 30 days; idle profiles folded. The page "
        "refreshes itself; the same data is at /status.json (and /metrics, for "
        "Prometheus, with the metrics extra). It answers only requests addressed to localhost, "
        "127.0.0.1, [::1] or the --host address (a defence against DNS rebinding). "
        "Runs until Ctrl-C.",
    )
    dashboard.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="default: $QUOTAFLOW_HOME or ~/.cache/quotaflow",
    )
    dashboard.add_argument(
        "--redis-url",
        metavar="URL",
        help="read the quota, the limiter, the pause and the circuit from this Redis "
        "(default: $QUOTAFLOW_REDIS_URL)",
    )
    dashboard.add_argument(
        "--redis-prefix",
        default="quotaflow",
        metavar="PREFIX",
        help="Redis key prefix (default: quotaflow)",
    )
    dashboard.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only)",
    )
    dashboard.add_argument(
        "--port",
        type=int,
        default=8765,
        help="port to listen on; 0 picks a free one (default: 8765)",
    )
    dashboard.add_argument(
        "--refresh",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how often the page fetches fresh numbers; 0 turns it off (default: 5)",
    )
    _cli_cassette.add_parsers(commands)
    for plugin in plugins:
        if plugin.commands is None:
            continue
        try:
            plugin.commands(commands)
        except Exception as exc:  # one broken plugin must not take the core's commands
            print(
                f"quotaflow: plugin {plugin.name!r} could not add its commands: {exc}",
                file=sys.stderr,
            )
    return parser
