"""CPU instructions per request, counted by valgrind: a figure that noise cannot move.

On a shared machine wall-clock ratios move by more than a small change (see the A/A
rows of ``overhead.py``). valgrind's callgrind counts the instructions a process runs,
the same count for the same code whatever else runs. Each row runs ``overhead.py``'s
set-up (the odds profile, the 2 KB recorded answer over a plain ``httpx.MockTransport``)
in a child under ``valgrind --tool=callgrind --instr-atstart=no``; the child switches
instrumentation on (``callgrind_control -i on``) only around its measured requests, and
a row's figure is the difference between two children making ``--few`` and ``--many``
requests, divided by the difference (set-up and the switch cancel out). All threads
count; the status counters flush by count only (their 5 s timer would fire many times
under valgrind's slowdown). Needs ``valgrind`` on the PATH; slow (~1 min a row). Run::

    python benchmarks/instructions.py                 # bare, ready, hot, warm, miss
    python benchmarks/instructions.py --kinds hot --many 300

Rows:
    bare    bare httpx over the plain MockTransport (overhead.py's floor)
    ready   a transport handing back a ready answer with a hot hit's 9 headers: what
            any hit costs the client, quotaflow or not
    hot     quotaflow answering from its hot tier
    warm    quotaflow answering from SQLite (make_client(hot_entries=0))
    miss    quotaflow going upstream, a new URL each time (fewer requests: --many / 5)
    plain   bare httpx GET to a host no profile matches, an answer without caching
            headers (paths.py's floor)
    get     quotaflow's GET there (x plain)
    plainpost, post   the same with POST (post x plainpost)
    pplain, ppost     POST to the odds host (its limiter and ledger; ppost x pplain)
    abare, amiss  bare and miss over httpx.AsyncClient and make_async_client (asked for
            by name): their worker threads count too, the hops' wake-ups in the kernel not
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
KINDS = ("bare", "ready", "hot", "warm", "miss")
# paths.py's rows on a host no profile matches (an answer with no caching headers): bare
# httpx's GET and POST, and quotaflow's.
PLAIN = ("plain", "get", "plainpost", "post", "pplain", "ppost")
# The row each row's ratio is over (``bare`` for those not named).
FLOOR = {"get": "plain", "post": "plainpost", "ppost": "pplain", "amiss": "abare"}


def _client(kind: str, directory: Path) -> Any:
    sys.path.insert(0, str(HERE))
    import httpx
    import overhead

    import quotaflow

    if kind in PLAIN:
        import paths

        mock = httpx.MockTransport(paths.answer)
        if kind in ("plain", "plainpost", "pplain"):
            return httpx.Client(transport=mock)
        return quotaflow.make_client(**paths._ours(directory, overhead.BENCH_PROFILE))
    mock = httpx.MockTransport(overhead._routes().handler)
    if kind == "bare":
        return httpx.Client(transport=mock)
    extra = {"hot_entries": 0} if kind == "warm" else {}
    ours = quotaflow.make_client(**overhead._quotaflow_kwargs(directory, mock, **extra))
    if kind != "ready":
        return ours
    with ours:
        answer = ours.get(overhead.keyed(overhead.SIZES["2 KB"]))
    headers, body = httpx.Headers(answer.headers.raw), answer.content

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=headers, stream=httpx.ByteStream(body))

    return httpx.Client(transport=httpx.MockTransport(handler))


async def _achild(kind: str, requests: int, switch: bool) -> None:
    """:func:`child` over the async clients (``abare``, ``amiss``)."""
    import httpx
    import overhead

    import quotaflow

    mock = httpx.MockTransport(overhead._routes().handler)
    with tempfile.TemporaryDirectory() as tmp:
        kwargs = overhead._quotaflow_kwargs(Path(tmp), mock)
        made = httpx.AsyncClient(transport=mock) if kind == "abare" else None
        async with made or quotaflow.make_async_client(**kwargs) as client:
            url = overhead.keyed(overhead.SIZES["2 KB"])
            new = overhead._urls(url)
            for _ in range(30):
                await client.get(new())
            pid = str(os.getpid())
            if switch:
                subprocess.run(["callgrind_control", "-i", "on", pid], capture_output=True)
            for _ in range(requests):
                await client.get(new())
            if switch:
                subprocess.run(["callgrind_control", "-i", "off", pid], capture_output=True)


def child(kind: str, requests: int, switch: bool) -> None:
    """The measured process: set up, warm up, then ``requests`` requests instrumented."""
    sys.path.insert(0, str(HERE))
    import overhead

    if switch:
        import quotaflow._state._counters as counters

        counters.FLUSH_SECONDS = 1e9  # see the module docstring
    if kind in ("abare", "amiss"):
        import asyncio

        asyncio.run(_achild(kind, requests, switch))
        return
    with tempfile.TemporaryDirectory() as tmp, _client(kind, Path(tmp)) as client:
        url = overhead.keyed(overhead.SIZES["2 KB"])
        new = overhead._urls(url)
        if kind in PLAIN:
            import paths

            url = paths.UNPROFILED
            post = {"content": b'{"query": 1}'}
            if kind in ("pplain", "ppost"):  # the odds host: its limiter and ledger
                url = paths.PROFILED
                post["params"] = {"apiKey": "key-not-real"}
            if kind.endswith("post") or kind == "pplain":
                client.get = functools.partial(client.post, **post)
        for _ in range(30):
            client.get(new() if kind == "miss" else url)
        pid = str(os.getpid())
        if switch:
            subprocess.run(["callgrind_control", "-i", "on", pid], capture_output=True)
        for _ in range(requests):
            client.get(new() if kind == "miss" else url)
        if switch:
            subprocess.run(["callgrind_control", "-i", "off", pid], capture_output=True)


def _count(kind: str, requests: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={tmp}/callgrind.out",
            sys.executable,
            __file__,
            "--child",
            kind,
            str(requests),
        ]
        found = subprocess.run(command, capture_output=True, text=True, check=True)
    match = re.search(r"Collected : (\d+)", found.stderr)
    if match is None:
        raise RuntimeError(f"no count from valgrind: {found.stderr[-500:]}")
    return int(match.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated rows")
    parser.add_argument("--few", type=int, default=100, help="requests of the shorter run")
    parser.add_argument("--many", type=int, default=500, help="requests of the longer run")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--bare", action="store_true", help="--child without valgrind")
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]), switch=not args.bare)
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("instructions.py needs valgrind (callgrind_control) on the PATH: skipped")
        return 0  # make bench goes on to the other scripts
    kinds = [kind.strip() for kind in args.kinds.split(",")]
    found: dict[str, float] = {}
    print(f"{'row':<10}{'instructions per request':>26}{'x bare':>8}")
    for kind in kinds:
        misses = kind in ("miss", "amiss", "abare")
        few, many = (args.few // 5, args.many // 5) if misses else (args.few, args.many)
        found[kind] = (_count(kind, many) - _count(kind, few)) / (many - few)
        ratio = f"{found[kind] / found[f]:.3f}" if (f := FLOOR.get(kind, "bare")) in found else ""
        print(f"{kind:<10}{found[kind]:>26,.0f}{ratio:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
