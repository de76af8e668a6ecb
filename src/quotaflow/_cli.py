"""The ``quotaflow`` command."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from ._version import __version__

__all__ = ["main"]

# What the demo imports beyond quotaflow's own dependencies: (module, distribution).
DEMO_NEEDS = (
    ("respx", "respx"),
    ("time_machine", "time-machine"),
    ("quotaflow_theoddsapi", "quotaflow-theoddsapi"),
)
DEMO_INSTALL = "pip install 'quotaflow[demo]' quotaflow-theoddsapi"


def _parser() -> argparse.ArgumentParser:
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
        description="Replay a Sunday morning of picks generation against The Odds API, "
        "offline: a simulated API and a simulated clock, so nothing is sent and nothing "
        "waits. Shows cache hits, the quota each call spends, the TTL chosen per sport, "
        f"and stale answers during an outage. Needs: {DEMO_INSTALL}",
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
        "saved, the last error and the circuit, with charts of the quota spent per day "
        "and the hit ratio over the last 30 days. The page refreshes itself; the same "
        "data is at /status.json. It answers only requests addressed to localhost, "
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
    from . import _cli_cassette

    _cli_cassette.add_parsers(commands)
    odds_history = commands.add_parser(
        "history",
        help="list archived events, or show how one event's odds moved "
        "(needs quotaflow-theoddsapi)",
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
    return parser


def _moment(text: str) -> float:
    """A date or an ISO 8601 time, UTC unless it says otherwise, as epoch seconds."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date or time such as 2026-11-29 or 2026-11-29T13:00, not {text!r}"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _demo(state_dir: Path | None) -> int:
    missing = []
    for module, distribution in DEMO_NEEDS:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(distribution)
    if missing:
        print(f"quotaflow demo needs {', '.join(missing)}: {DEMO_INSTALL}", file=sys.stderr)
        return 2
    from . import _demo

    if state_dir is None:
        with tempfile.TemporaryDirectory(prefix="quotaflow-demo-") as temporary:
            _demo.run(Path(temporary), sys.stdout, temporary=True)
        return 0
    if state_dir.exists() and (not state_dir.is_dir() or any(state_dir.iterdir())):
        print(f"quotaflow demo: --state-dir {state_dir} must be new or empty", file=sys.stderr)
        return 2
    _demo.run(state_dir, sys.stdout)
    return 0


def _plan(args: argparse.Namespace) -> int:
    import json

    import attrs

    from ._client import make_client
    from ._plan import plan
    from .exceptions import ConfigError, StateUnavailable

    try:
        source = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        print(f"quotaflow plan: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    with source:
        urls = [
            line.strip() for line in source if line.strip() and not line.lstrip().startswith("#")
        ]
    try:
        with make_client(
            state_dir=args.state_dir,
            redis_url=args.redis_url,
            redis_prefix=args.redis_prefix,
        ) as client:
            result = plan(client, urls, priority=args.priority)
    except (ConfigError, ValueError) as exc:
        print(f"quotaflow plan: {exc}", file=sys.stderr)
        return 2
    except StateUnavailable as exc:  # e.g. Redis went away after the client was built
        print(f"quotaflow plan: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(attrs.asdict(result), indent=2, default=str))
    else:
        for row in result.requests:
            answer = "cache" if row.fresh else f"upstream, cost {row.cost}"
            print(f"{row.profile:<12} {answer:<22} {row.url}")
        left = ", ".join(f"{k} {'?' if v is None else v}" for k, v in result.remaining.items())
        verdict = "fits" if result.fits else "does NOT fit"
        print(
            f"\n{len(result.requests)} requests: {result.upstream} upstream costing "
            f"{result.cost}; remaining {left or '-'}; {verdict} at priority {result.priority}"
        )
    return 0 if result.fits else 1


def _history(args: argparse.Namespace) -> int:
    try:
        from quotaflow_theoddsapi import archive_path, archived_events, history, movement
    except ImportError:
        print(
            "quotaflow history needs quotaflow-theoddsapi: pip install quotaflow-theoddsapi",
            file=sys.stderr,
        )
        return 2
    import sqlite3

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
    return _history_event(rows, movement(rows), args)


def _utc(moment: float, layout: str = "%Y-%m-%dT%H:%M:%SZ") -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(moment, UTC).strftime(layout)


def _history_list(found: list[Any], args: argparse.Namespace) -> int:
    import json

    if args.json:
        print(
            json.dumps(
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
        )
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


def _history_event(rows: list[Any], moves: dict[Any, Any], args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime

    if args.json:
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
        print(json.dumps(doc, indent=2))
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


def main(argv: list[str] | None = None) -> int:
    """Run the ``quotaflow`` command; return its exit status.

    A reader that stops early (``quotaflow status --json | head -1``) closes the pipe:
    that is not an error, so it ends the command quietly instead of with a traceback.
    Status: the command's own when only the final flush failed, else 0.
    """
    code = 0
    try:
        code = _run(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # The recipe of the Python docs (library/signal, "Note on SIGPIPE"): point stdout
        # at devnull so the interpreter's own flush at exit cannot fail a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return code


def _run(argv: list[str] | None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error
        return exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    if args.command == "demo":
        return _demo(args.state_dir)
    if args.command == "plan":
        return _plan(args)
    if args.command == "status":
        from . import _cli_status
        from .exceptions import ConfigError, StateUnavailable

        try:
            return _cli_status.run(args)
        except ConfigError as exc:
            print(f"quotaflow status: {exc}", file=sys.stderr)
            return 2
        except StateUnavailable as exc:  # e.g. Redis went away between two reads
            print(f"quotaflow status: {exc}", file=sys.stderr)
            return 1
    if args.command == "dashboard":
        from . import _dashboard
        from .exceptions import ConfigError

        try:
            return _dashboard.run(args)
        except ConfigError as exc:
            print(f"quotaflow dashboard: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:  # the port is taken, or the address is not ours
            print(
                f"quotaflow dashboard: cannot listen on {args.host}:{args.port}: {exc}",
                file=sys.stderr,
            )
            return 2
    if args.command == "history":
        return _history(args)
    if args.command == "explain":
        from . import _explain

        return _explain.run(args)
    if args.command in ("record", "replay"):
        from . import _cli_cassette

        return (
            _cli_cassette.record(args) if args.command == "record" else _cli_cassette.replay(args)
        )
    parser.print_help(sys.stderr)
    return 2
