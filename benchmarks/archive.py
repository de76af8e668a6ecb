"""The Odds API history archive: CPU per 200 KB miss with it, as a share of the miss; RSS
after 1,000 200 KB misses.

Every miss is a new URL through the whole stack (the odds profile with limits that never
wait, its freshness rule reading the body) over a plain ``httpx.MockTransport`` answering
a 200 KB slate (40 NFL games x 8 books x h2h/spreads/totals, built by
``quotaflow_theoddsapi.samples``). Two kinds of answer:

    unchanged   the same bytes every time (a slate re-fetched that did not move)
    moved       one price different in every answer (the whole body must be read)

**CPU share**: blocks of misses through a client without the archive and through one with
``OddsHistory`` subscribed alternate. The share is the archive worker's own CPU time
(``time.thread_time`` around each batch it writes) per miss of a "with" block, over the
CPU time per miss of the "without" block beside it; median and [min-max] over rounds.
As a cross-check, the whole process's extra CPU (``time.process_time``, the worker
included, after ``flush()``): (with - without) / without, which shares the noise of
everything else a miss does (hot-tier evictions, SQLite checkpoints land in either).

**RSS**: a fresh Python process per row makes the misses through one client (with or
without the archive), then reads ``VmRSS``/``VmHWM`` from ``/proc/self/status``.

Run::

    python benchmarks/archive.py                  # 1,000 misses for RSS, 8 rounds for CPU
    python benchmarks/archive.py --misses 200 --rounds 3
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import attrs
import httpx
from common import RESULTS, json_arg, write_results

import quotaflow
from quotaflow_theoddsapi import PROFILE, OddsApiFreshness, OddsHistory, samples

HERE = Path(__file__).resolve()
SPORT = "americanfootball_nfl"
URL = f"https://api.the-odds-api.com/v4/sports/{SPORT}/odds"
DAY = 86400
# The real profile (cost, quota headers, the freshness rule reading the body, secrets),
# with limits that never make a request wait and no quota to run out of.
PROFILE_HERE = attrs.evolve(
    PROFILE,
    rates=(quotaflow.Rate(10**9, per=1.0, burst=10**9),),
    quota=None,
    freshness=OddsApiFreshness(
        live=DAY, within_1h=DAY, within_6h=DAY, within_24h=DAY, later=DAY, no_events=DAY
    ),
)
MODES = ("unchanged", "moved")
_PRICE = re.compile(rb'"price": [0-9.]+')


def slate(games: int = 40) -> bytes:
    """About 200 KB: ``games`` NFL games from 8 books with three markets each."""
    start = time.time() + 2 * DAY
    return samples.odds(
        [
            samples.event(
                SPORT,
                f"Home {n}",
                f"Away {n}",
                start + 3600 * n,
                bookmakers=8,
                markets=("h2h", "spreads", "totals"),
            )
            for n in range(games)
        ]
    )


def bodies(mode: str, base: bytes) -> Iterator[bytes]:
    """The answers in order: the same bytes, or the first price moved each time."""
    n = 0
    while True:
        n += 1
        if mode == "unchanged":
            yield base
        else:
            yield _PRICE.sub(f'"price": {1 + n / 1_000_000:.6f}'.encode(), base, count=1)


class Api:
    """The upstream: whatever body is next, with honest quota headers."""

    def __init__(self, mode: str, base: bytes) -> None:
        self._next = bodies(mode, base)
        self.calls = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        headers = samples.quota_headers(used=self.calls, remaining=10**9, last=1)
        return httpx.Response(
            200, content=next(self._next), headers={**headers, "content-type": "application/json"}
        )


def client(directory: Path, api: Api, archive: OddsHistory | None) -> httpx.Client:
    return quotaflow.make_client(
        profiles=[PROFILE_HERE],
        plugins=False,
        state_dir=directory,
        transport=httpx.MockTransport(api.handler),
        subscribers=[archive] if archive is not None else [],
    )


def _misses(made: httpx.Client, prefix: str) -> Callable[[int], None]:
    counter = iter(range(10**9))

    def run(n: int) -> None:
        for _ in range(n):
            params = {"apiKey": "key-not-real", "commenceTimeFrom": f"{prefix}{next(counter)}"}
            made.get(URL, params=params)

    return run


def cpu_share(directory: Path, mode: str, base: bytes, rounds: int, block: int) -> dict[str, Any]:
    """Per round, a block of misses without the archive then with it (order swapped every
    other round); the share is the extra CPU of the process over the plain miss's."""
    worker_cpu = [0.0]

    def timed(batch: Any) -> None:
        """The archive's own writer, its thread's CPU time counted."""
        started = time.thread_time()
        try:
            archive._archive(batch)
        finally:
            worker_cpu[0] += time.thread_time() - started

    archive = OddsHistory(directory / "with", write=timed)
    apis = {"without": Api(mode, base), "with": Api(mode, base)}
    plain = client(directory / "without", apis["without"], None)
    archived = client(directory / "with", apis["with"], archive)
    runs = {"without": _misses(plain, "a"), "with": _misses(archived, "b")}
    shares, worker, per_miss = [], [], {"without": [], "with": []}
    try:
        for label in runs:  # warm both paths up, and the archive's file
            runs[label](3)
        archive.flush()
        for round_number in range(rounds):
            cpu = {}
            order = list(runs) if round_number % 2 else list(runs)[::-1]
            for label in order:
                gc.collect()
                before = worker_cpu[0]
                started = time.process_time()
                runs[label](block)
                if label == "with":
                    archive.flush()
                cpu[label] = (time.process_time() - started) / block
                per_miss[label].append(cpu[label] * 1e3)
                if label == "with":
                    worker.append((worker_cpu[0] - before) / block)
            shares.append((cpu["with"] - cpu["without"]) / cpu["without"])
            worker[-1] /= cpu["without"]
    finally:
        plain.close()
        archived.close()
    stats = archive.stats()
    return {
        "share": statistics.median(worker),
        "share_min": min(worker),
        "share_max": max(worker),
        "process_share": statistics.median(shares),
        "process_share_min": min(shares),
        "process_share_max": max(shares),
        "miss_ms": statistics.median(per_miss["without"]),
        "miss_with_archive_ms": statistics.median(per_miss["with"]),
        "body_bytes": len(base),
        "archived": stats.archived,
        "unchanged": stats.unchanged,
        "dropped": stats.dropped,
        "rows": stats.rows,
        "upstream": apis["with"].calls,
    }


def _status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in KiB (Linux)."""
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


def child(misses: int, mode: str, with_archive: bool) -> dict[str, Any]:
    """In this (fresh) process: ``misses`` misses through one client; RSS before closing."""
    base = slate()
    with tempfile.TemporaryDirectory() as tmp:
        archive = OddsHistory(tmp) if with_archive else None
        api = Api(mode, base)
        made = client(Path(tmp), api, archive)
        before = _status()
        started = time.process_time()
        _misses(made, "c")(misses)
        after = _status()
        stats = attrs.asdict(archive.stats()) if archive is not None else None
        made.close()
        return {
            "misses": misses,
            "upstream": api.calls,
            "rss_before_kib": before["VmRSS"],
            "rss_after_kib": after["VmRSS"],
            "peak_kib": after["VmHWM"],
            "cpu_s": time.process_time() - started,
            "archive": stats,
            "body_bytes": len(base),
        }


def rss(misses: int, mode: str, with_archive: bool) -> dict[str, Any]:
    """``child`` in a fresh interpreter, so nothing this process holds counts."""
    argv = [sys.executable, str(HERE), "--child", mode, "--misses", str(misses)]
    if not with_archive:
        argv.append("--no-archive")
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.splitlines()[-1]))


def run(misses: int, rounds: int, block: int) -> dict[str, Any]:
    """Both measures for both kinds of answer; prints its table, returns the numbers."""
    base = slate()
    found: dict[str, Any] = {"cpu": {}, "rss": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in MODES:
            found["cpu"][mode] = cpu_share(Path(tmp) / mode, mode, base, rounds, block)
    for mode in MODES:
        found["rss"][mode] = {
            "without": rss(misses, mode, False),
            "with": rss(misses, mode, True),
        }
    print(
        f"\nodds history archive, {len(base) / 1000:.0f} KB misses "
        f"(CPU: {rounds} rounds of {block}; RSS: {misses} misses, a fresh process each)"
    )
    print(
        f"{'answers':<11}{'worker CPU / miss':>22}{'process extra CPU':>24}{'miss ms':>9}"
        f"{'with':>7}{'RSS without':>13}{'RSS with':>10}{'peak with':>11}{'dropped':>9}"
    )
    for mode in MODES:
        cpu, memory = found["cpu"][mode], found["rss"][mode]
        share = f"{cpu['share']:.1%} [{cpu['share_min']:.0%}-{cpu['share_max']:.0%}]"
        extra = (
            f"{cpu['process_share']:+.0%} [{cpu['process_share_min']:+.0%}.."
            f"{cpu['process_share_max']:+.0%}]"
        )
        print(
            f"{mode:<11}{share:>22}{extra:>24}"
            f"{cpu['miss_ms']:>9.2f}{cpu['miss_with_archive_ms']:>7.2f}"
            f"{memory['without']['rss_after_kib'] / 1024:>12.0f}M"
            f"{memory['with']['rss_after_kib'] / 1024:>9.0f}M"
            f"{memory['with']['peak_kib'] / 1024:>10.0f}M"
            f"{memory['with']['archive']['dropped']:>9}"
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--misses", type=int, default=1000, help="misses for the RSS rows")
    parser.add_argument("--rounds", type=int, default=8, help="rounds of the CPU share")
    parser.add_argument("--block", type=int, default=50, help="misses per block (CPU share)")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--no-archive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--json",
        type=json_arg,
        default=RESULTS,
        help="merge the results into this file ('-': none; default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.misses, args.child, not args.no_archive)))
        return 0
    write_results(args.json, "archive", run(args.misses, args.rounds, args.block))
    return 0


if __name__ == "__main__":
    sys.exit(main())
