"""``quotaflow record`` and ``quotaflow replay``: cassettes for scripts that are not tests."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

__all__ = ["add_parsers", "record", "replay"]


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The two commands' parsers."""
    recording = commands.add_parser(
        "record",
        help="GET URLs through quotaflow and record the answers to a cassette",
        description="GET each URL through a quotaflow client whose innermost transport is "
        "quotaflow.testing.Recorder: what really goes out is written to CASSETTE (JSON; "
        "credentials and cookies scrubbed), so that tests and `quotaflow replay` can "
        "answer from it offline. Exit status 1 if a request failed or was not recorded.",
    )
    recording.add_argument("cassette", type=Path, metavar="CASSETTE")
    recording.add_argument("urls", nargs="*", metavar="URL")
    recording.add_argument(
        "--from", dest="source", metavar="FILE", help="more URLs, one per line ('-': stdin)"
    )
    recording.add_argument(
        "--mode",
        choices=("once", "new_episodes", "all"),
        default="new_episodes",
        help="new_episodes (default): record only what the cassette lacks; all: record "
        "everything anew; once: record only if the cassette does not exist yet",
    )
    recording.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="the client's cache and quota state; default: a temporary directory, so that "
        "nothing is answered from an earlier cache instead of being recorded",
    )
    replaying = commands.add_parser(
        "replay",
        help="answer URLs from a cassette, offline, and say what they would cost",
        description="GET each URL (default: every request CASSETTE recorded, in order) "
        "through a quotaflow client answered from CASSETTE, on a simulated clock and with "
        "the APIs' quota emulated; print status, cache outcome, cost and remaining for "
        "each, and each run's credits. Nothing is sent. Exit status 1 if a URL is not in "
        "the cassette.",
    )
    replaying.add_argument("cassette", type=Path, metavar="CASSETTE")
    replaying.add_argument("urls", nargs="*", metavar="URL")
    replaying.add_argument(
        "--from", dest="source", metavar="FILE", help="more URLs, one per line ('-': stdin)"
    )
    replaying.add_argument(
        "--runs", type=int, default=1, metavar="N", help="replay the URLs N times (default 1)"
    )


def _urls(args: argparse.Namespace) -> list[str]:
    urls = list(args.urls)
    if args.source is not None:
        source = sys.stdin if args.source == "-" else open(args.source, encoding="utf-8")  # noqa: SIM115
        with source:
            urls += [
                line.strip()
                for line in source
                if line.strip() and not line.lstrip().startswith("#")
            ]
    return urls


@contextmanager
def _state(given: Path | None) -> Iterator[Path]:
    if given is not None:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="quotaflow-cassette-") as temporary:
        yield Path(temporary)


def _row(response: httpx.Response, shown: str, cost: int | None = None) -> str:
    """Status, cache outcome, cost (quotaflow's reading unless given), remaining, URL."""
    info = response.extensions.get("quotaflow")
    cache = getattr(info, "cache", "-")
    cost = getattr(info, "cost", 0) if cost is None else cost
    remaining = getattr(info, "remaining", None)
    left = "?" if remaining is None else remaining
    return f"{response.status_code}  {cache:<7} cost {cost:>3}  remaining {left:>6}  {shown}"


def record(args: argparse.Namespace) -> int:
    from ._client import make_client
    from .testing import CassetteMiss, Recorder
    from .testing._recorder import profiles_or_plugins
    from .testing._scrub import Secrets

    try:
        urls = _urls(args)
    except OSError as exc:
        print(f"quotaflow record: cannot read {args.source}: {exc.strerror}", file=sys.stderr)
        return 2
    if not urls:
        print("quotaflow record: no URL given", file=sys.stderr)
        return 2
    secrets = Secrets(profiles_or_plugins(None))
    failed = 0
    with _state(args.state_dir) as state:
        recorder = Recorder(httpx.HTTPTransport(), args.cassette, mode=args.mode)
        with make_client(state_dir=state, transport=recorder) as client:
            for url in urls:
                shown = str(secrets.strip_url(httpx.URL(url)))
                try:
                    response = client.get(url)
                except (httpx.HTTPError, CassetteMiss) as exc:
                    failed += 1
                    print(f"quotaflow record: {shown}: {exc}", file=sys.stderr)
                    continue
                print(_row(response, shown))
        count = len(recorder.exchanges)
    print(f"{count} exchange{'s' if count != 1 else ''} in {args.cassette}")
    return 1 if failed else 0


def replay(args: argparse.Namespace) -> int:
    try:
        from .testing import CassetteMiss, ReplaySession, read_cassette
        from .testing._recorder import profiles_or_plugins
        from .testing._scrub import Secrets

        exchanges = read_cassette(args.cassette)
        urls = _urls(args) or [e.url for e in exchanges if e.method == "GET"]
    except ImportError as exc:
        print(f"quotaflow replay: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError) as exc:
        print(f"quotaflow replay: cannot read {args.cassette}: {exc}", file=sys.stderr)
        return 2
    secrets = Secrets(profiles_or_plugins(None))
    with _state(None) as state:
        session = ReplaySession(exchanges, state)
        session.replayer.name = str(args.cassette)
        for run in range(1, max(1, args.runs) + 1):
            before = session.spent
            with session.client() as client:
                for url in urls:
                    shown = str(secrets.strip_url(httpx.URL(url)))
                    charged = session.spent
                    try:
                        response = client.get(url)
                    except CassetteMiss as exc:
                        print(f"quotaflow replay: {exc}", file=sys.stderr)
                        return 1
                    # What the emulated API charged, not quotaflow's estimate.
                    print(_row(response, shown, session.spent - charged))
            plural = "" if len(urls) == 1 else "s"
            print(f"run {run}: {len(urls)} request{plural}, {session.spent - before} credits")
    return 0
