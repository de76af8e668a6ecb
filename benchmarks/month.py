"""A month on The Odds API free tier (500 credits): does the quota last to the reset?

A picks generator follows 4 sports (NFL, college football, NBA, NHL) through November
2026 on a simulated clock (time-machine, tick=False: nothing sleeps), against an emulated
API that answers ``/v4/sports/{sport}/odds`` with the games not yet over, charges what
The Odds API charges (the plugin's ``cost``: markets x regions; an empty answer is free),
keeps its own credit counter, answers ``x-requests-*`` truthfully and ``401
OUT_OF_USAGE_CREDITS`` once the plan is spent. The generator asks the same URL (us
region, h2h) at three priorities:

- CRITICAL: each game's odds 60 and 15 minutes before its kick-off (games of a sport
  starting together share one answer);
- NORMAL: the morning slate, every sport at 12:00 UTC;
- LOW: every sport every 30 minutes, all month.

Contenders: plain httpx; hishel alone (RFC mode: the API sends no caching headers, so
nothing is reused); quotaflow with the theoddsapi profile as shipped (reserves only, no
pace); quotaflow with the profile set for the month: ``pace="even"``, reserves LOW 4 %,
NORMAL 0, and ``max_stale`` per priority (CRITICAL 15 minutes, HIGH 1 hour, NORMAL 6
hours, LOW a day).

Reported per contender: how CRITICAL, NORMAL and LOW asks were answered (fresh: from the
API or a fresh stored answer; stale: a stored answer past its freshness; refused: a 401
from the API or QuotaExhausted), the day the credits ran out, the credits left unused at
the reset, and for quotaflow whether its ledger equalled the API's own count at every
answer, and whether every stale answer was within its priority's max_stale.

The goal (issue 14): every CRITICAL ask answered fresh, the others fresh, stale within
max_stale or refused with a reason, at most 5 % of the credits unused at the reset, the
ledger exact. The script exits 1 if quotaflow misses it. Run::

    python benchmarks/month.py            # the whole month (about 30 s)
    python benchmarks/month.py --days 3   # a shorter run (unused credits not judged)
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import attrs
import hishel
import httpx
import time_machine
from common import RESULTS, json_arg, verdict, write_results
from hishel.httpx import CacheTransport

import quotaflow
from quotaflow import Priority, Quota
from quotaflow_theoddsapi import PROFILE, cost, samples

HOST = "https://api.the-odds-api.com"
API_KEY = "month-key-not-real"
PLAN = 500
START = datetime(2026, 11, 1, tzinfo=UTC)
RESET = datetime(2026, 12, 1, tzinfo=UTC)
PARAMS = {"regions": "us", "markets": "h2h", "oddsFormat": "decimal"}
SPORTS = ("americanfootball_nfl", "americanfootball_ncaaf", "basketball_nba", "icehockey_nhl")
DURATION = {  # how long a game is in play (the API lists it until then)
    "americanfootball_nfl": 3.5 * 3600,
    "americanfootball_ncaaf": 3.5 * 3600,
    "basketball_nba": 2.5 * 3600,
    "icehockey_nhl": 2.5 * 3600,
}
# What the API lists ahead of time: a week of fixtures.
HORIZON = 7 * 86400
UNUSED_TARGET = 0.05
# What quotaflow's refusals say, grouped.
REASONS = ("held to the pace", "quota used up", "reserve of priority", "needs more than")
PRIORITIES = (Priority.CRITICAL, Priority.NORMAL, Priority.LOW)

MONTH_PROFILE = attrs.evolve(
    PROFILE,
    quota=Quota(PLAN, period="month", reset_day=1),
    pace="even",
    reserves={"critical": 0.0, "high": 0.0, "normal": 0.0, "low": 0.04},
    max_stale={"critical": 900, "high": 3600, "normal": 6 * 3600, "low": 86400},
)

# The plugin's profile as shipped (reserves CRITICAL 0, HIGH 5 %, NORMAL 20 %, LOW 50 %;
# max_stale CRITICAL 15 min, HIGH 1 h, else a day), no pace: what pacing adds.
RESERVES_ONLY = attrs.evolve(PROFILE, quota=Quota(PLAN, period="month", reset_day=1))


def at(day: int, hour: int, minute: int = 0) -> float:
    """Epoch seconds of November ``day`` 2026, HH:MM UTC (a day past 30 rolls over)."""
    return (START + timedelta(days=day - 1, hours=hour, minutes=minute)).timestamp()


@dataclass(frozen=True)
class Game:
    sport: str
    home: str
    away: str
    kickoff: float


def slate(seed: int = 2026) -> list[Game]:
    """November 2026 as the four leagues play it (times UTC; New York is UTC-5):

    NFL on Thursday, Sunday (18:00, 21:05, 21:25, 01:20) and Monday nights, three games
    on Thanksgiving; college football on Saturdays (17:00, 20:30, 00:30) and Tuesday and
    Wednesday nights; NBA every night (00:00 and 02:30), NHL every night (00:00) and
    most nights late (02:00).
    """
    draw = random.Random(seed)
    games: list[Game] = []
    number = Counter[str]()

    def add(sport: str, day: int, hour: int, minute: int, count: int) -> None:
        for _ in range(count):
            number[sport] += 1
            n = number[sport]
            games.append(
                Game(sport, f"{sport} home {n}", f"{sport} away {n}", at(day, hour, minute))
            )

    for day in range(1, 31):
        weekday = datetime(2026, 11, day).weekday()  # Monday 0
        if weekday == 6:  # Sunday
            add("americanfootball_nfl", day, 18, 0, 8)
            add("americanfootball_nfl", day, 21, 5, 2)
            add("americanfootball_nfl", day, 21, 25, 3)
            add("americanfootball_nfl", day + 1, 1, 20, 1)
        if weekday in (0, 3) and day != 26:  # Monday and Thursday nights
            add("americanfootball_nfl", day + 1, 1, 15, 1)
        if day == 26:  # Thanksgiving
            add("americanfootball_nfl", day, 17, 30, 1)
            add("americanfootball_nfl", day, 21, 30, 1)
            add("americanfootball_nfl", day + 1, 1, 20, 1)
        if weekday == 5:  # Saturday
            add("americanfootball_ncaaf", day, 17, 0, 6)
            add("americanfootball_ncaaf", day, 20, 30, 6)
            add("americanfootball_ncaaf", day + 1, 0, 30, 4)
        if weekday in (1, 2):  # Tuesday and Wednesday nights
            add("americanfootball_ncaaf", day + 1, 0, 0, 2)
        add("basketball_nba", day + 1, 0, 0, draw.randint(3, 6))
        add("basketball_nba", day + 1, 2, 30, draw.randint(1, 3))
        add("icehockey_nhl", day + 1, 0, 0, draw.randint(3, 6))
        if draw.random() < 0.6:
            add("icehockey_nhl", day + 1, 2, 0, draw.randint(1, 2))
    return sorted(games, key=lambda game: game.kickoff)


@dataclass(frozen=True)
class Ask:
    moment: float
    priority: Priority
    sport: str


def schedule(games: list[Game], start: float, end: float) -> list[Ask]:
    """Every ask from ``start`` to ``end``: CRITICAL first at a moment, then NORMAL, LOW."""
    asks = [
        Ask(game.kickoff - before, Priority.CRITICAL, game.sport)
        for game in games
        for before in (3600, 900)
    ]
    moment = start
    while moment < end:
        if int(moment - start) % 86400 == 12 * 3600:
            asks += [Ask(moment, Priority.NORMAL, sport) for sport in SPORTS]
        asks += [Ask(moment, Priority.LOW, sport) for sport in SPORTS]
        moment += 1800
    rank = {p: n for n, p in enumerate(PRIORITIES)}
    found = [ask for ask in asks if start <= ask.moment < end]
    return sorted(found, key=lambda ask: (ask.moment, rank[ask.priority]))


def url(sport: str) -> str:
    return str(httpx.URL(f"{HOST}/v4/sports/{sport}/odds", params={**PARAMS, "apiKey": API_KEY}))


class MonthApi:
    """The Odds API for the month: its own credit counter and honest quota headers."""

    def __init__(self, games: list[Game], clock: Callable[[], float]) -> None:
        self.games = games
        self.clock = clock
        self.used = 0
        self.calls = 0
        self.out_at: float | None = None  # when the credits ran out

    @property
    def remaining(self) -> int:
        return PLAN - self.used

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        now = self.clock()
        if request.url.params.get("apiKey") != API_KEY:
            return samples.error(401, "INVALID_KEY", "API key is not valid")
        sport = request.url.path.split("/")[3]
        listed = [
            samples.event(game.sport, game.home, game.away, game.kickoff, bookmakers=1)
            for game in self.games
            if game.sport == sport
            and now < game.kickoff + DURATION[sport]
            and game.kickoff < now + HORIZON
        ]
        # The plugin's cost rule is The Odds API's: markets x regions; nothing if empty.
        price = cost(request) if listed else 0
        if price > self.remaining:
            if self.out_at is None:
                self.out_at = now
            return samples.error(401, "OUT_OF_USAGE_CREDITS", "Usage quota has been reached.")
        self.used += price
        if self.remaining <= 0 and self.out_at is None:
            self.out_at = now
        response = samples.response(
            samples.odds(listed), used=self.used, remaining=self.remaining, last=price
        )
        response.headers["date"] = email_date(now)
        return response


def email_date(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


@dataclass
class Outcome:
    name: str
    answers: dict[Priority, Counter[str]] = field(
        default_factory=lambda: {p: Counter[str]() for p in PRIORITIES}
    )
    reasons: Counter[str] = field(default_factory=Counter)
    ledger_checked: int = 0
    ledger_off: int = 0
    stale_past_limit: int = 0
    out_day: int | None = None
    unused: int = 0
    upstream: int = 0
    spent: int = 0


# What a contender does with one ask: (how it was answered, a refusal's reason, the
# quota remaining it reported, the stale answer's age past freshness and its limit).
Fetch = Callable[[Ask], tuple[str, str, int | None, float | None]]


class Variant:
    name = ""

    def open(
        self, api: MonthApi, traveller: Any, directory: Path
    ) -> contextlib.AbstractContextManager[Fetch]:
        raise NotImplementedError


def _plain_fetch(client: httpx.Client) -> Fetch:
    def fetch(ask: Ask) -> tuple[str, str, int | None, float | None]:
        response = client.get(url(ask.sport))
        if response.status_code == 200:
            return "fresh", "", None, None
        return "refused", f"HTTP {response.status_code}", None, None

    return fetch


class Plain(Variant):
    name = "plain httpx"

    @contextlib.contextmanager
    def open(self, api: MonthApi, traveller: Any, directory: Path) -> Iterator[Fetch]:
        with httpx.Client(transport=httpx.MockTransport(api.handler)) as client:
            yield _plain_fetch(client)


class HishelAlone(Variant):
    name = "hishel alone (RFC)"

    @contextlib.contextmanager
    def open(self, api: MonthApi, traveller: Any, directory: Path) -> Iterator[Fetch]:
        storage = hishel.SqliteStorage(database_path=directory / "hishel.db")
        transport = CacheTransport(
            httpx.MockTransport(api.handler), storage=storage, rfc=hishel.CacheOptions(shared=False)
        )
        with httpx.Client(transport=transport) as client:
            yield _plain_fetch(client)


class Quotaflow(Variant):
    def __init__(self, profile: quotaflow.ApiProfile, name: str) -> None:
        self.profile = profile
        self.name = name

    @contextlib.contextmanager
    def open(self, api: MonthApi, traveller: Any, directory: Path) -> Iterator[Fetch]:
        with quotaflow.make_client(
            profiles=[self.profile],
            plugins=False,
            config=False,
            state_dir=directory / "state",
            transport=httpx.MockTransport(api.handler),
            clock=quotaflow.Clock(sleep=traveller.shift, random=random.Random(14).random),
        ) as client:

            def fetch(ask: Ask) -> tuple[str, str, int | None, float | None]:
                try:
                    response = client.get(url(ask.sport), extensions={"priority": ask.priority})
                except quotaflow.QuotaExhausted as refused:
                    reason = next((why for why in REASONS if why in str(refused)), str(refused))
                    return "refused", reason, refused.remaining, None
                info: quotaflow.ResponseInfo = response.extensions["quotaflow"]
                if response.status_code != 200:
                    return "refused", f"HTTP {response.status_code}", info.remaining, None
                if info.cache == "stale":
                    past = (info.age or 0.0) - (info.ttl or 0.0)
                    return "stale", info.stale_reason or "", info.remaining, past
                return "fresh", "", info.remaining, None

            yield fetch


def run(variant: Variant, games: list[Game], asks: list[Ask], directory: Path) -> Outcome:
    outcome = Outcome(variant.name)
    with time_machine.travel(asks[0].moment, tick=False) as traveller:
        api = MonthApi(games, clock=lambda: datetime.now(UTC).timestamp())
        with variant.open(api, traveller, directory) as fetch:
            for ask in asks:
                traveller.move_to(datetime.fromtimestamp(ask.moment, UTC))
                how, reason, remaining, past = fetch(ask)
                outcome.answers[ask.priority][how] += 1
                if how == "refused":
                    outcome.reasons[f"{ask.priority}: {reason}"] += 1
                if isinstance(variant, Quotaflow):
                    outcome.ledger_checked += 1
                    outcome.ledger_off += remaining != api.remaining
                    limit = variant.profile.stale_limit(ask.priority)
                    outcome.stale_past_limit += past is not None and past > limit
    outcome.upstream, outcome.spent = api.calls, api.used
    outcome.unused = api.remaining
    if api.out_at is not None:
        outcome.out_day = datetime.fromtimestamp(api.out_at, UTC).day
    return outcome


def share(counter: Counter[str], key: str) -> str:
    total = sum(counter.values())
    return f"{100 * counter[key] / total:.1f}" if total else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--days", type=int, default=30, help="days of November (default: all 30)")
    parser.add_argument(
        "--json",
        type=json_arg,
        default=RESULTS,
        help="merge the results into this file ('-': none; default: %(default)s)",
    )
    args = parser.parse_args(argv)
    days = max(1, min(args.days, 30))
    end = START.timestamp() + days * 86400
    games = slate()
    asks = schedule(games, START.timestamp(), end)
    whole = days == 30
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        variants = (
            Plain(),
            HishelAlone(),
            Quotaflow(RESERVES_ONLY, "quotaflow (reserves only)"),
            Quotaflow(MONTH_PROFILE, "quotaflow (pace=even)"),
        )
        for n, variant in enumerate(variants):
            directory = Path(tmp) / str(n)
            directory.mkdir()
            outcomes.append(run(variant, games, asks, directory))

    in_run = [g for g in games if g.kickoff - 3600 < end]
    count = Counter(ask.priority for ask in asks)
    print(
        f"month: November 2026, {days} days, {PLAN} credits; {len(in_run)} games; asks: "
        f"{count[Priority.CRITICAL]} critical, {count[Priority.NORMAL]} normal, "
        f"{count[Priority.LOW]} low"
    )
    print(
        f"{'variant':<24}{'critical fresh/stale/refused %':>32}{'normal f/s/r %':>20}"
        f"{'low f/s/r %':>20}{'upstream':>9}{'spent':>7}{'out on':>8}{'unused':>8}"
    )
    rows: dict[str, dict[str, Any]] = {}
    for o in outcomes:
        cells = [
            "/".join(share(o.answers[p], k) for k in ("fresh", "stale", "refused"))
            for p in PRIORITIES
        ]
        out = f"day {o.out_day}" if o.out_day else "never"
        print(
            f"{o.name:<24}{cells[0]:>32}{cells[1]:>20}{cells[2]:>20}{o.upstream:>9}"
            f"{o.spent:>7}{out:>8}{o.unused:>8}"
        )
        rows[o.name] = {
            "answers": {str(p): dict(o.answers[p]) for p in PRIORITIES},
            "upstream": o.upstream,
            "spent": o.spent,
            "out_day": o.out_day,
            "unused": o.unused,
            "refusals": dict(o.reasons),
        }
    for o in outcomes[2:]:
        exact_here = "exact" if o.ledger_off == 0 else f"{o.ledger_off} answers off"
        print(f"{o.name}: ledger {exact_here}; refusals:")
        for reason, n in sorted(o.reasons.items()):
            print(f"    {reason}: {n}")
        rows[o.name]["ledger_exact"] = o.ledger_off == 0
    ours = outcomes[-1]
    critical = ours.answers[Priority.CRITICAL]
    all_fresh = critical["fresh"] == sum(critical.values())
    exact = ours.ledger_off == 0
    within = ours.stale_past_limit == 0
    unused_ok = ours.unused <= UNUSED_TARGET * PLAN if whole else None
    asked = sum(critical.values())
    lines = [
        (f"every critical ask answered fresh: {critical['fresh']} of {asked}", all_fresh),
        (
            "the ledger equals the API's count at every answer: "
            f"{ours.ledger_checked - ours.ledger_off} of {ours.ledger_checked}",
            exact,
        ),
        (f"stale answers past their priority's max_stale: {ours.stale_past_limit}", within),
        (
            f"at most {UNUSED_TARGET:.0%} unused at the reset: "
            + (f"{ours.unused} of {PLAN}" if whole else "judged over the whole month only"),
            unused_ok,
        ),
    ]
    for text, ok in lines:
        print(f"target: {text}  {verdict(ok)}")
    write_results(
        args.json,
        "month",
        {"days": days, "plan": PLAN, "games": len(in_run), "rows": rows},
    )
    return 0 if all_fresh and exact and within and unused_ok is not False else 1


if __name__ == "__main__":
    sys.exit(main())
