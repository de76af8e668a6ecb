"""The cold store under a long run: it stays within ``cold_bytes`` while it keeps taking
new immutable answers, evicting the least recently used.

A backtest over ``--days`` days of The Odds API's historical odds in 1-minute steps
(1,440 requests a day, ``--sports`` sports each), against an emulator of the
historical endpoint (5-minute snapshots, each answer in its wrapper, 10 x markets x
regions credits), on a simulated clock (nothing sleeps), through one quotaflow client
with a small ``--cold-bytes`` bound. After every ``--every`` requests it reads the
bytes the cold store holds (``SUM(size)`` in ``cold.db``) and the file's size on disk.

It reports the peak of both, the bound, the answers kept and evicted, and the upstream
calls and credits against the distinct snapshots asked for (each paid once while it is
kept: a snapshot evicted and asked for again is paid again, which a long backtest that
never looks back does not do). Exits 1 if the bodies kept ever pass the bound.
Run::

    python benchmarks/cold.py                      # 7 days, 2 sports, 4 MiB
    python benchmarks/cold.py --days 30 --cold-bytes 16777216
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import attrs
import httpx
import time_machine
from common import RESULTS, json_arg, verdict, write_results

import quotaflow
from quotaflow_theoddsapi import PROFILE, samples
from quotaflow_theoddsapi._profile import cost

HOST = "https://api.the-odds-api.com"
KEY = "bench-key-not-real"
SPORTS = ("americanfootball_nfl", "basketball_nba", "baseball_mlb", "icehockey_nhl")
TEAMS = [(f"Home {i}", f"Away {i}") for i in range(8)]
START = datetime(2023, 10, 1, tzinfo=UTC).timestamp()
GRID = 300


class Archive:
    """The historical odds endpoint: 5-minute snapshots; counts calls and credits."""

    def __init__(self, first: float, last: float) -> None:
        self.moments = [first + i * GRID for i in range(int((last - first) // GRID) + 2)]
        self.calls = 0
        self.credits = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        sport = request.url.path.split("/")[4]
        asked = datetime.fromisoformat(request.url.params["date"].replace("Z", "+00:00"))
        index = bisect.bisect_right(self.moments, asked.timestamp()) - 1
        at = self.moments[index]
        following = self.moments[index + 1] if index + 1 < len(self.moments) else None
        markets = request.url.params.get("markets", "h2h").split(",")
        events = [
            samples.event(sport, home, away, at + 3600 * (i + 1), markets=markets, updated=at)
            for i, (home, away) in enumerate(TEAMS)
        ]
        body = samples.historical(events, at, at - GRID, following)
        charge = cost(request)
        self.calls += 1
        self.credits += charge
        return samples.response(body, used=self.credits, remaining=10**9, last=charge)


def _kept(path: Path) -> tuple[int, int]:
    """(bytes of bodies kept, entries) in cold.db."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        size, entries = db.execute(
            "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM entries"
        ).fetchone()
    return int(size), int(entries)


def _on_disk(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def run(days: float, sports: int, cold_bytes: int, every: int, state: Path) -> dict[str, Any]:
    minutes = int(days * 1440)
    archive = Archive(START - GRID, START + days * 86400)
    chosen = SPORTS[:sports]
    with time_machine.travel(START, tick=False) as traveller:

        async def asleep(seconds: float) -> None:
            traveller.shift(seconds)

        clock = quotaflow.Clock(sleep=traveller.shift, asleep=asleep)
        client = quotaflow.make_client(
            profiles=[attrs.evolve(PROFILE, quota=quotaflow.Quota(10**9))],
            plugins=False,
            state_dir=state,
            transport=httpx.MockTransport(archive),
            clock=clock,
            cold_bytes=cold_bytes,
            hot_entries=16,
        )
        cold = state / "cold.db"
        peak = peak_disk = requests = 0
        stored = 0
        began = time.perf_counter()
        with client:
            for minute in range(minutes):
                date = samples.iso(START + minute * 60)
                for sport in chosen:
                    params = {"apiKey": KEY, "regions": "us", "markets": "h2h,spreads"}
                    response = client.get(
                        f"{HOST}/v4/historical/sports/{sport}/odds",
                        params={**params, "date": date},
                    )
                    response.read()
                    stored += response.extensions["quotaflow"].cache == "miss"
                    requests += 1
                    if requests % every == 0:
                        size, _ = _kept(cold)
                        peak, peak_disk = max(peak, size), max(peak_disk, _on_disk(cold))
            size, entries = _kept(cold)
            peak, peak_disk = max(peak, size), max(peak_disk, _on_disk(cold))
        seconds = time.perf_counter() - began
    snapshots = -(-minutes // 5) * sports
    return {
        "days": days,
        "sports": sports,
        "requests": requests,
        "upstream_calls": archive.calls,
        "credits": archive.credits,
        "distinct_snapshots": snapshots,
        "cold_bytes": cold_bytes,
        "peak_kept_bytes": peak,
        "peak_file_bytes": peak_disk,
        "entries_kept": entries,
        "evicted": stored - entries,
        "within_bound": peak <= cold_bytes,
        "seconds": round(seconds, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--days", type=float, default=7, help="days of 1-minute steps")
    parser.add_argument("--sports", type=int, default=2, choices=range(1, 5), help="sports")
    parser.add_argument("--cold-bytes", type=int, default=4 * 2**20, help="the bound")
    parser.add_argument("--every", type=int, default=500, help="requests between samples")
    parser.add_argument("--json", type=json_arg, default=RESULTS, help="results file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="quotaflow-cold-") as directory:
        result = run(args.days, args.sports, args.cold_bytes, args.every, Path(directory))
    print(
        f"{result['requests']} requests over {result['days']} days x {result['sports']} sports:"
        f" {result['upstream_calls']} upstream calls, {result['credits']} credits"
        f" ({result['distinct_snapshots']} distinct snapshots)"
    )
    print(
        f"cold store: bound {result['cold_bytes']} B, peak kept {result['peak_kept_bytes']} B,"
        f" peak file {result['peak_file_bytes']} B; {result['entries_kept']} answers kept,"
        f" {result['evicted']} evicted; {result['seconds']} s"
    )
    print(f"within bound: {verdict(result['within_bound'])}")
    write_results(args.json, "cold", result)
    return 0 if result["within_bound"] else 1


if __name__ == "__main__":
    sys.exit(main())
