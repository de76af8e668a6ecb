"""A 50 MiB streamed GET: time to first byte and peak memory, as ratios to bare httpx.

A local HTTP/1.1 server (a subprocess on 127.0.0.1, a free port, a real socket) serves
the body in 64 KiB writes with ``Content-Length`` and ``Cache-Control: max-age=600``.
Each request is ``client.stream("GET", url)``, its raw chunks read and dropped. Run::

    make bench            # or: python benchmarks/streaming.py --rounds 10

Rows (each sync and async; every quotaflow client is ``make_client(plugins=False,
config=False, state_dir=<temp>)``, so the server is an unprofiled host cached by RFC 9111):
    httpx (A/A)             a second bare httpx request: the gauge of what noise alone gives
    quotaflow miss          a new URL, the body teed into SQLite (``max_body=64 MiB``)
    quotaflow hit           a URL stored just before: the body streams from SQLite in chunks
    quotaflow over max_body the default ``max_body`` (8 MiB): the body passes through
                            unstored, upstream every time (the same URL twice a round)

Within a round each row runs right after (odd rounds: right before) a bare httpx request
to the same server, strictly alternating; a ratio is taken per pair, and the median and
the spread (min-max) over the rounds are printed. Two passes per row and round:

    time     time to first byte (``client.stream`` entered to the first ``iter_raw`` chunk)
             and to the last byte, no tracing
    memory   tracemalloc's peak while streaming the whole body (Python's heap only, started
             just before the request, in this process; the server's memory never counts)

Targets (printed, never asserted; issue 10): each quotaflow row's peak within 4 MiB of
bare httpx's, and its first byte before half of bare httpx's whole-body time (a buffered
body would arrive only at the end).

Round 0 warms everything up and is not kept. Quotaflow clients get a fresh state
directory every round (50 MiB per stored body), opened with a small request before any
timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import inspect
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import RESULTS, json_arg, ratios, spread, verdict, write_results

import quotaflow

SERVER = Path(__file__).resolve().parent / "stream_server.py"
MIB = 2**20
DEFAULT_MAX_BODY: int = inspect.signature(quotaflow.make_client).parameters["max_body"].default
ROWS = ("httpx (A/A)", "quotaflow miss", "quotaflow hit", "quotaflow over max_body")
FEW_MIB = 4 * MIB  # "peak memory stays within a few MiB of bare httpx" (issue 10)


# --- the server (its own process: its allocations and its GIL are not ours) ---


@contextlib.contextmanager
def server(size: int, chunk: int) -> Iterator[str]:
    """The server subprocess's base URL, for the duration of the block."""
    process = subprocess.Popen(
        [sys.executable, str(SERVER), str(size), str(chunk)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        yield f"http://127.0.0.1:{int(process.stdout.readline())}"
    finally:
        process.stdin.close()
        process.stdout.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- one streamed GET ---


@dataclass
class Sample:
    ttfb: float = 0.0  # seconds to the first chunk
    total: float = 0.0  # seconds to the end of the body (response closed)
    peak: float = 0.0  # tracemalloc peak, bytes (memory pass only)
    size: int = 0


def sync_stream(client: httpx.Client, url: str, traced: bool) -> Sample:
    gc.collect()
    if traced:
        tracemalloc.start()
    found = Sample()
    started = time.perf_counter()
    with client.stream("GET", url) as response:
        chunks = response.iter_raw()
        found.size = len(next(chunks))
        found.ttfb = time.perf_counter() - started
        for chunk in chunks:
            found.size += len(chunk)
    found.total = time.perf_counter() - started
    if traced:
        found.peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return found


async def async_stream(client: httpx.AsyncClient, url: str, traced: bool) -> Sample:
    gc.collect()
    if traced:
        tracemalloc.start()
    found = Sample()
    started = time.perf_counter()
    async with client.stream("GET", url) as response:
        chunks = response.aiter_raw()
        found.size = len(await anext(chunks))
        found.ttfb = time.perf_counter() - started
        async for chunk in chunks:
            found.size += len(chunk)
    found.total = time.perf_counter() - started
    if traced:
        found.peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return found


# --- rounds ---


@dataclass
class Row:
    group: str
    row: str
    ttfb: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    peak: list[float] = field(default_factory=list)
    base_ttfb: list[float] = field(default_factory=list)
    base_total: list[float] = field(default_factory=list)
    base_peak: list[float] = field(default_factory=list)
    upstream: list[int] = field(default_factory=list)

    def keep(self, base: tuple[Sample, Sample], mine: tuple[Sample, Sample], calls: int) -> None:
        (base_time, base_memory), (time_, memory) = base, mine
        self.ttfb.append(time_.ttfb)
        self.total.append(time_.total)
        self.peak.append(memory.peak)
        self.base_ttfb.append(base_time.ttfb)
        self.base_total.append(base_time.total)
        self.base_peak.append(base_memory.peak)
        self.upstream.append(calls)


class Bench:
    """Clients, URLs and the upstream counter for one run."""

    def __init__(self, base: str, directory: Path, size: int, max_body: int, passing: int):
        self.base = base
        self.directory = directory
        self.size = size
        self.max_body = max_body
        self.passing = passing
        self.counter = httpx.Client(base_url=base, verify=False)  # plain HTTP: no CA bundle
        self._urls = iter(range(10**9))

    def url(self, tag: str) -> str:
        return f"{self.base}/big?{tag}={next(self._urls)}"

    def served(self) -> int:
        return int(self.counter.get("/count").text)

    def quotaflow_kwargs(self, name: str, max_body: int) -> dict[str, Any]:
        state = self.directory / name
        shutil.rmtree(state, ignore_errors=True)  # a fresh state every round
        return {
            "plugins": False,
            "config": False,
            "state_dir": state,
            "max_body": max_body,
            "verify": False,  # plain HTTP: loading the CA bundle would only slow set-up
        }

    def check(self, found: Sample) -> Sample:
        if found.size != self.size:
            raise RuntimeError(f"streamed {found.size} bytes, expected {self.size}")
        return found


async def fetch(bench: Bench, client: Any, url: str, traced: bool) -> Sample:
    if isinstance(client, httpx.AsyncClient):
        return bench.check(await async_stream(client, url, traced))
    return bench.check(sync_stream(client, url, traced))


async def small(bench: Bench, client: Any) -> None:
    """A small request: the client's state opened before any timing."""
    result = client.get(f"{bench.base}/small")
    if inspect.isawaitable(result):
        await result


async def one_group(
    bench: Bench, rows: dict[tuple[str, str], Row], group: str, floor: Any, number: int
) -> None:
    """Every row once (reversed on odd rounds), each pass paired with a bare httpx
    request (its order in the pair reversed on odd rounds too)."""
    flip = number % 2 == 1
    async with contextlib.AsyncExitStack() as stack:
        stored: Any
        passing: Any
        if group == "sync":
            make = quotaflow.make_client
            stored = stack.enter_context(make(**bench.quotaflow_kwargs("sync", bench.max_body)))
            passing = stack.enter_context(
                make(**bench.quotaflow_kwargs("sync-pass", bench.passing))
            )
        else:
            amake = quotaflow.make_async_client
            stored = await stack.enter_async_context(
                amake(**bench.quotaflow_kwargs("async", bench.max_body))
            )
            passing = await stack.enter_async_context(
                amake(**bench.quotaflow_kwargs("async-pass", bench.passing))
            )
        await small(bench, stored)
        await small(bench, passing)
        hit = bench.url("hit")
        await fetch(bench, stored, hit, False)  # the one upstream call the hit row saves
        fixed = {"quotaflow hit": hit, "quotaflow over max_body": bench.url("over")}
        clients = {
            "httpx (A/A)": floor,
            "quotaflow miss": stored,
            "quotaflow hit": stored,
            "quotaflow over max_body": passing,
        }
        for row in ROWS[::-1] if flip else ROWS:
            base: list[Sample] = []
            mine: list[Sample] = []
            calls = 0
            for traced in (False, True):
                url = fixed[row] if row in fixed else bench.url("aa" if row == ROWS[0] else "miss")
                if not flip:
                    base.append(await fetch(bench, floor, bench.url("floor"), traced))
                before = bench.served()
                mine.append(await fetch(bench, clients[row], url, traced))
                calls += bench.served() - before
                if flip:
                    base.append(await fetch(bench, floor, bench.url("floor"), traced))
            if number > 0:  # round 0 warms up
                rows[group, row].keep((base[0], base[1]), (mine[0], mine[1]), calls)


async def measure(bench: Bench, rounds: int) -> dict[tuple[str, str], Row]:
    rows = {(group, row): Row(group, row) for group in ("sync", "async") for row in ROWS}
    gc.collect()
    gc.freeze()  # what the imports made is never garbage: each sample's collection skips it
    try:
        with httpx.Client(verify=False) as bare:
            async with httpx.AsyncClient(verify=False) as abare:
                for number in range(rounds + 1):
                    groups = (("sync", bare), ("async", abare))
                    for group, floor in groups[::-1] if number % 2 else groups:
                        await one_group(bench, rows, group, floor, number)
    finally:
        gc.unfreeze()
        bench.counter.close()
    return rows


# --- report ---


def summarise(row: Row) -> dict[str, Any]:
    median = statistics.median
    return {
        "ttfb": ratios(row.ttfb, row.base_ttfb),
        "total": ratios(row.total, row.base_total),
        "peak": ratios(row.peak, row.base_peak),
        "ttfb_ms": median(row.ttfb) * 1e3,
        "httpx_ttfb_ms": median(row.base_ttfb) * 1e3,
        "total_ms": median(row.total) * 1e3,
        "httpx_total_ms": median(row.base_total) * 1e3,
        "peak_mib": median(row.peak) / MIB,
        "httpx_peak_mib": median(row.base_peak) / MIB,
        "peak_over_httpx_mib": median([p - b for p, b in zip(row.peak, row.base_peak, strict=True)])
        / MIB,
        "upstream_per_request": sum(row.upstream) / (2 * len(row.upstream)),
    }


def report(
    found: dict[tuple[str, str], Row], rounds: int, size: int
) -> tuple[dict[str, Any], dict[str, bool]]:
    summary: dict[str, dict[str, Any]] = {}
    targets: dict[str, bool] = {}
    print(
        f"\nStreamed GET of {size / MIB:.1f} MiB, ratios to bare httpx in the same run "
        f"(median [min-max] of {rounds} rounds; each pair strictly alternates)"
    )
    for group in ("sync", "async"):
        print(
            f"\n{group:<24}{'TTFB':>21}{'full body':>21}{'peak memory':>21}"
            f"{'TTFB ms':>9}{'peak MiB':>10}{'upstream':>9}"
        )
        summary[group] = {}
        for name in ROWS:
            row = summary[group][name] = summarise(found[group, name])
            print(
                f"{name:<24}{spread(row['ttfb']):>21}{spread(row['total']):>21}"
                f"{spread(row['peak']):>21}{row['ttfb_ms']:>9.2f}{row['peak_mib']:>10.2f}"
                f"{row['upstream_per_request']:>9.2f}"
            )
            if name == ROWS[0]:
                continue
            targets[f"{group} {name}: peak <= httpx + 4 MiB"] = (
                row["peak_over_httpx_mib"] * MIB <= FEW_MIB
            )
            # Buffering shows as a first byte near the whole body's time; quotaflow's own
            # per-request work (a miss's SQLite transactions) is milliseconds.
            targets[f"{group} {name}: streams (first byte before half of httpx's body)"] = (
                row["ttfb_ms"] < 0.5 * row["httpx_total_ms"]
            )
        floor = summary[group][ROWS[0]]
        print(
            f"{'httpx itself':<24}{floor['httpx_ttfb_ms']:>18.2f} ms"
            f"{floor['httpx_total_ms']:>18.1f} ms{floor['httpx_peak_mib']:>17.2f} MiB"
        )
    print()
    for name, ok in targets.items():
        print(f"{verdict(ok):<7}{name}")
    return summary, targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds kept (after a warm-up)")
    parser.add_argument("--size", type=int, default=50 * MIB, help="body bytes (50 MiB)")
    parser.add_argument("--chunk", type=int, default=64 * 1024, help="server write size")
    parser.add_argument(
        "--max-body", type=int, default=64 * MIB, help="max_body of the storing client"
    )
    parser.add_argument(
        "--over-max-body",
        type=int,
        default=DEFAULT_MAX_BODY,
        help="max_body of the pass-through client (default: make_client's, %(default)s)",
    )
    parser.add_argument(
        "--json",
        type=json_arg,
        default=RESULTS,
        help="merge the results into this file ('-': none; default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not args.over_max_body < args.size <= args.max_body:
        parser.error("expected --over-max-body < --size <= --max-body")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, server(args.size, args.chunk) as base:
        bench = Bench(base, Path(tmp), args.size, args.max_body, args.over_max_body)
        found = asyncio.run(measure(bench, args.rounds))
    summary, targets = report(found, args.rounds, args.size)
    print(f"\n{time.perf_counter() - started:.0f} s")
    write_results(
        args.json,
        "streaming",
        {
            "rounds": args.rounds,
            "size": args.size,
            "chunk": args.chunk,
            "max_body": args.max_body,
            "over_max_body": args.over_max_body,
            "memory": "tracemalloc peak (Python heap), in process, per request",
            "rows": summary,
            "targets": targets,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
