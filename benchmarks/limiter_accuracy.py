"""Limiter accuracy: 10,000 requests against The Odds API's 30/s and a 500-credit month.

Everything goes through ``quotaflow.make_client`` with the theoddsapi profile
(``Rate(30, per=1, burst=30)``: never more than 30 calls in any second, ``Quota(500)``;
``--burst 5`` smooths it) on a simulated clock: time-machine with
tick=False and ``quotaflow.Clock(sleep=traveller.shift)``, so a limiter wait moves the
clock instead of sleeping. Upstream is ``replay.OddsApi`` on the free plan (500
credits): it answers 401 OUT_OF_USAGE_CREDITS when the credits are gone, as the real
API does, and counts the calls in each second. With ``--enforce`` it also answers 429
EXCEEDED_FREQ_LIMIT past 30 calls in a calendar second (the real API's exact window is
unknown); a refusal or an open circuit is then waited out as the client is told.

One worker sends every request as fast as the limiter lets it, each a new URL (no cache
hits): most are free event listings (cost 0), every 16th an odds call for one game
(h2h, us: 1 credit), so the demand for credits (625) exceeds the plan. All run at
CRITICAL priority, whose reserve is 0: the ledger may spend the quota to exactly 0.

Reported: calls per one-second window and how many windows held more than 30, for
calendar seconds and for sliding windows (any [t, t + 1 s); counted by the calls that
open an over-full one), 429s received, utilisation of the allowed rate while saturated
(target >= 0.95: calls per second from the first call to the last, over 30; also
per full calendar second), credits spent vs the plan. Exit 1 if any window held more
than 30 or the quota was overspent (more paid answers than the plan, or any 401
OUT_OF_USAGE_CREDITS reached).
Run::

    python benchmarks/limiter_accuracy.py
"""

from __future__ import annotations

import argparse
import bisect
import math
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import attrs
import httpx
import time_machine
from common import RESULTS, json_arg, verdict, write_results
from replay import API_KEY, HOST, OddsApi, emulator

import quotaflow
from quotaflow_theoddsapi import PROFILE, samples

LIMIT = 30  # calls per second, the API's frequency limit and the profile's rate
SPORTS = ("americanfootball_nfl", "basketball_nba", "icehockey_nhl")


def requests_for(count: int, paid_every: int) -> list[tuple[bool, str]]:
    """(paid, url): event listings (free), and every ``paid_every``-th one game's odds."""
    events = [(sport, emulator.odds_events(sport, markets=("h2h",))[0]["id"]) for sport in SPORTS]
    found = []
    for n in range(count):
        sport, event_id = events[n % len(events)]
        since = samples.iso(emulator.RECORDED + n)
        if n % paid_every == 0:
            params = {"regions": "us", "markets": "h2h", "eventIds": event_id}
            path = f"/v4/sports/{sport}/odds"
        else:
            params, path = {}, f"/v4/sports/{sport}/events"
        params = {**params, "commenceTimeFrom": since, "apiKey": API_KEY}
        found.append((n % paid_every == 0, str(httpx.URL(HOST + path, params=params))))
    return found


def sliding_counts(times: list[float], width: float = 1.0) -> list[int]:
    """Calls in the half-open window [t, t + width) opened by each call (times sorted).

    Any window holding n calls can slide right to start at its first call and hold
    n or more, so these are the windows to look at.
    """
    return [bisect.bisect_left(times, t + width) - bisect.bisect_left(times, t) for t in times]


def run(
    count: int, paid_every: int, plan: int, enforce: bool, directory: Path, burst: int = LIMIT
) -> dict[str, Any]:
    start = emulator.RECORDED
    refused = backoffs = 0
    statuses: Counter[int] = Counter()
    with time_machine.travel(start, tick=False) as traveller:
        api = OddsApi(plan=plan, used=0, freq_limit=LIMIT if enforce else None)
        profile = attrs.evolve(
            PROFILE,
            quota=quotaflow.Quota(plan, period="month"),
            rates=(quotaflow.Rate(LIMIT, per=1.0, burst=burst),),
        )
        wanted = requests_for(count, paid_every)
        with (
            quotaflow.make_client(
                profiles=[profile],
                plugins=False,
                state_dir=directory,
                transport=httpx.MockTransport(api.router().handler),
                clock=quotaflow.Clock(sleep=traveller.shift),
            ) as client,
            quotaflow.priority("critical"),
        ):
            for _paid, url in wanted:
                while True:
                    try:
                        statuses[client.get(url).status_code] += 1
                    except quotaflow.QuotaExhausted:
                        refused += 1
                    except (quotaflow.CircuitOpen, quotaflow.RateLimited) as exc:
                        # A well-behaved script: wait as told, then ask again.
                        backoffs += 1
                        traveller.shift(max(exc.retry_after or 0.0, 0.001))
                        continue
                    break
    answered = list(api.log)
    times = sorted(call.at for call in answered)
    per_second = Counter(math.floor(t) for t in times)
    first, last = math.floor(times[0]), math.floor(times[-1])
    full = [per_second.get(second, 0) for second in range(first + 1, last)]
    sliding = sliding_counts(times)
    span = times[-1] - times[0]
    # The sustained rate: calls per second in [first, last). Exact when calls come in
    # bursts (the last call opens one); a smoother flow reads a hair high at the end.
    rate = bisect.bisect_left(times, times[-1]) / span if span > 0 else float("nan")
    paid_served = sum(1 for call in answered if "/odds" in call.resource and call.status == 200)
    out_of_credits = sum(1 for call in answered if call.status == 401)
    return {
        "requests": count,
        "upstream": len(answered),
        "status_counts": {
            str(k): v for k, v in sorted(Counter(c.status for c in answered).items())
        },
        "refused_by_quotaflow": refused,
        "backoffs": backoffs,
        "api_enforces_limit": enforce,
        "burst": burst,
        "paid_demand": sum(1 for paid, _ in wanted if paid),
        "paid_served": paid_served,
        "credits_spent": api.used,
        "plan": plan,
        "out_of_credits_401": out_of_credits,
        "max_calendar_second": max(per_second.values()),
        "max_sliding_second": max(sliding),
        "calendar_seconds_over": sum(1 for n in per_second.values() if n > LIMIT),
        "sliding_windows_over": sum(1 for n in sliding if n > LIMIT),
        "first_second": per_second[first],
        "seconds": last - first + 1,
        "utilisation": rate / LIMIT,
        "utilisation_calendar": (sum(full) / (LIMIT * len(full))) if full else float("nan"),
        "utilisation_median_second": (statistics.median(full) / LIMIT) if full else float("nan"),
        "simulated_seconds": span,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=10_000, help="requests sent")
    parser.add_argument("--plan", type=int, default=500, help="credits in the month")
    parser.add_argument(
        "--paid-every", type=int, default=16, help="every Nth request costs a credit"
    )
    parser.add_argument(
        "--burst",
        type=int,
        default=LIMIT,
        help="the rate's burst (default: %(default)s, the profile's); smaller smooths",
    )
    parser.add_argument(
        "--enforce",
        action="store_true",
        help="the simulated API answers 429 past 30 calls in a second (default: it counts)",
    )
    parser.add_argument(
        "--json",
        type=json_arg,
        default=RESULTS,
        help="merge the results into this file ('-': none; default: %(default)s)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        found = run(args.requests, args.paid_every, args.plan, args.enforce, Path(tmp), args.burst)

    overspent = found["paid_served"] > args.plan or found["out_of_credits_401"] > 0
    rate_ok = found["calendar_seconds_over"] == 0 and found["sliding_windows_over"] == 0
    used_ok = found["utilisation"] >= 0.95
    print(
        f"limiter accuracy: {found['requests']} requests at CRITICAL, {LIMIT}/s "
        f"burst {args.burst}, {args.plan} credits; "
        f"{found['simulated_seconds']:.1f} simulated seconds"
    )
    print(
        f"  upstream calls {found['upstream']} (statuses {found['status_counts']}), "
        f"refused by quotaflow {found['refused_by_quotaflow']}, waits on CircuitOpen/"
        f"RateLimited {found['backoffs']}"
    )
    print(
        f"  calls per second: first {found['first_second']}, max calendar second "
        f"{found['max_calendar_second']}, max sliding 1 s window {found['max_sliding_second']}"
    )
    print(
        f"  windows over {LIMIT}: calendar seconds {found['calendar_seconds_over']} of "
        f"{found['seconds']}, sliding 1 s windows {found['sliding_windows_over']} "
        f"(of {found['upstream']} opened by a call)"
    )
    print(
        f"  utilisation while saturated: {found['utilisation']:.4f} (calls per second from "
        f"the first call to the last, over {LIMIT}); full calendar seconds "
        f"{found['utilisation_calendar']:.3f} (median second "
        f"{found['utilisation_median_second']:.3f})"
    )
    print(
        f"  credits: paid demand {found['paid_demand']}, paid answers {found['paid_served']}, "
        f"spent {found['credits_spent']} of {args.plan}, 401 OUT_OF_USAGE_CREDITS "
        f"{found['out_of_credits_401']}"
    )
    print(f"\n{'target':<52}{'measured':>12}  verdict")
    checks = [
        (
            f"1 s windows over {LIMIT}: calendar | sliding",
            f"{found['calendar_seconds_over']} | {found['sliding_windows_over']}",
            rate_ok,
        ),
        ("utilisation of the allowed rate >= 0.95", f"{found['utilisation']:.4f}", used_ok),
        (
            f"quota never overspent (paid answers <= {args.plan}, no 401)",
            f"{found['paid_served']}",
            not overspent,
        ),
    ]
    for name, measured, ok in checks:
        print(f"{name:<52}{measured:>12}  {verdict(ok)}")
    found["targets"] = {"rate": rate_ok, "utilisation": used_ok, "quota": not overspent}
    write_results(args.json, "limiter_accuracy", found)
    return 1 if overspent or not rate_ok else 0


if __name__ == "__main__":
    sys.exit(main())
