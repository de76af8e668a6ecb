"""Where a sync request's time goes: cProfile over many hot hits, warm hits and misses.

The same client set-up as overhead.py (the odds profile with limits that never wait, the
2 KB recorded answer over a plain ``httpx.MockTransport``), then ``--requests`` requests of
each kind under cProfile: the top functions by own time (``tottime``), and by time
including callees (``cumtime``) among quotaflow's own. Absolute times are inflated by
the profiler; read the shares. Run::

    python benchmarks/profile.py                   # 2,000 hits each, 300 misses
    python benchmarks/profile.py --top 25 --kinds miss
    python benchmarks/profile.py --kinds "redis hit"   # hits read from Redis (not default)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

# This file's name shadows the standard library's ``profile``, which cProfile imports:
# import both with this directory off the path, then put it first for our own modules.
HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
import cProfile  # noqa: E402
import pstats  # noqa: E402

sys.path.insert(0, str(HERE))

import httpx  # noqa: E402
from overhead import BENCH_PROFILE, REPLAY_HEADERS, keyed  # noqa: E402
from paths import REDIS_URL, redis_prefix, redis_reachable  # noqa: E402
from replay import PlainRoutes, load  # noqa: E402

import quotaflow  # noqa: E402

FIXTURE = load("event_odds_nfl")
KINDS = ("hot hit", "warm hit", "miss")
# Asked for by name: a warm hit read from Redis (QUOTAFLOW_BENCH_REDIS, paths.py's).
OPTIONAL = ("redis hit",)


def _client(directory: Path, routes: PlainRoutes, **extra: Any) -> httpx.Client:
    return quotaflow.make_client(
        profiles=[BENCH_PROFILE],
        plugins=False,
        state_dir=directory,
        transport=httpx.MockTransport(routes.handler),
        **extra,
    )


def _where(entry: tuple[str, int, str]) -> str:
    filename, line, name = entry
    parts = Path(filename).parts
    for anchor in ("quotaflow", "site-packages", "lib"):
        if anchor in parts:
            parts = parts[parts.index(anchor) + (anchor != "quotaflow") :]
            break
    return f"{'/'.join(parts[-3:])}:{line}({name})" if line else name


def profiled(run: Callable[[int], None], requests: int) -> pstats.Stats:
    run(50)  # first-use costs are not the steady state
    profiler = cProfile.Profile()
    profiler.enable()
    run(requests)
    profiler.disable()
    return pstats.Stats(profiler, stream=io.StringIO())


def top(stats: pstats.Stats, requests: int, count: int) -> dict[str, list[dict[str, Any]]]:
    """The top functions by own time, and quotaflow's own by cumulative time, in µs per
    request and as shares of the total."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values())
    rows = [
        {
            "function": _where(key),
            "calls_per_request": calls / requests,
            "own_us": own / requests * 1e6,
            "cum_us": cumulative / requests * 1e6,
            "own_share": own / total if total else 0.0,
        }
        for key, (_, calls, own, cumulative, _) in raw.items()
    ]
    own = sorted(rows, key=lambda row: -row["own_us"])[:count]
    ours = [
        row
        for row in sorted(rows, key=lambda row: -row["cum_us"])
        if "quotaflow" in row["function"].split(":")[0]
    ][:count]
    return {"total_us": [{"us": total / requests * 1e6}], "own": own, "ours_cumulative": ours}


def run(kinds: list[str], requests: int, misses: int, count: int) -> dict[str, Any]:
    routes = PlainRoutes([FIXTURE.name], headers=REPLAY_HEADERS)
    url = keyed(FIXTURE)
    found: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        for kind in kinds:
            extra: dict[str, Any] = {"hot_entries": 0} if kind.endswith("warm hit") else {}
            if kind == "redis hit":
                if not redis_reachable(REDIS_URL):
                    print(f"redis hit: no Redis at {REDIS_URL}")
                    continue
                prefix = stack.enter_context(redis_prefix(REDIS_URL))
                extra = {"hot_entries": 0, "redis_url": REDIS_URL, "redis_prefix": prefix}
            with _client(Path(tmp) / kind.replace(" ", "-"), routes, **extra) as client:
                client.get(url)
                counter = iter(range(10**9))

                def go(
                    n: int,
                    client: httpx.Client = client,
                    kind: str = kind,
                    counter: Any = counter,
                ) -> None:
                    for _ in range(n):
                        if kind == "miss":
                            client.get(url.copy_add_param("commenceTimeFrom", next(counter)))
                        else:
                            client.get(url)

                n = misses if kind == "miss" else requests
                found[kind] = top(profiled(go, n), n, count)
                found[kind]["requests"] = n
    return found


def report(found: dict[str, Any]) -> None:
    for kind, tables in found.items():
        total = tables["total_us"][0]["us"]
        print(
            f"\n{kind} (sync, 2 KB): {total:.0f} µs per request under cProfile, "
            f"{tables['requests']} requests"
        )
        print(f"  {'own µs':>7} {'share':>6} {'calls':>6}  function (by own time)")
        for row in tables["own"]:
            print(
                f"  {row['own_us']:>7.1f} {row['own_share']:>6.1%} "
                f"{row['calls_per_request']:>6.1f}  {row['function']}"
            )
        print(f"  {'cum µs':>7} {'':>6} {'calls':>6}  quotaflow's own (by time with callees)")
        for row in tables["ours_cumulative"]:
            calls = row["calls_per_request"]
            print(f"  {row['cum_us']:>7.1f} {'':>6} {calls:>6.1f}  {row['function']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="hits profiled per kind")
    parser.add_argument("--misses", type=int, default=300, help="misses profiled")
    parser.add_argument("--top", type=int, default=12, help="functions listed per table")
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help=f"comma-separated, of: {', '.join(KINDS + OPTIONAL)}",
    )
    args = parser.parse_args(argv)
    kinds = [kind.strip() for kind in args.kinds.split(",")]
    unknown = set(kinds) - set(KINDS + OPTIONAL)
    if unknown:
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    report(run(kinds, args.requests, args.misses, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
