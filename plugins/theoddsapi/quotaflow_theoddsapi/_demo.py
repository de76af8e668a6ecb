"""``quotaflow demo``: a Sunday morning of picks generation against The Odds API, offline.

The plugin's demo (``PLUGIN.demo``): the core command finds it through the plugin hook,
and this module uses only quotaflow's public API.

The API's answers come from a cassette (``_demo_odds.json``, next to this module) that
quotaflow's recorder made against a local emulator of The Odds API
(``benchmarks/fixtures/record.py``); :class:`quotaflow.testing.Replayer` answers from it
through respx, as the innermost transport, with the ``x-requests-*`` headers of an
emulated credit counter. Time is simulated too (time-machine), so every freshness
decision is real and nothing ever sleeps.
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import httpx
import time_machine

from quotaflow import Clock, Priority, QuotaExhausted, ResponseInfo, make_client, priority

from ._profile import PROFILE

HOST = "https://api.the-odds-api.com"
API_KEY = "demo-key-not-real"
PLAN, USED_BEFORE = 500, 180
START = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)  # a Sunday of the NFL season
PICKS = {"regions": "us", "markets": "h2h,spreads"}


NAMES = {"americanfootball_nfl": "NFL", "basketball_nba": "NBA", "baseball_mlb": "MLB"}
SPORTS = tuple(NAMES)
CASSETTE = Path(__file__).with_name("_demo_odds.json")
Shift = Callable[[timedelta], None]


class Upstream(httpx.BaseTransport):
    """The API as the demo's clients reach it: ``next_transport`` (the cassette, or the
    recorder over the emulator) unless ``down``, counting calls and reading the API's
    own credit counter (``x-requests-used``)."""

    def __init__(self, next_transport: httpx.BaseTransport) -> None:
        self.next_transport = next_transport
        self.used = USED_BEFORE
        self.answered = 0
        self.failed = 0
        self.down = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            self.failed += 1
            raise httpx.ConnectError("connection refused (simulated outage)", request=request)
        self.answered += 1
        response = self.next_transport.handle_request(request)
        if (used := response.headers.get("x-requests-used")) is not None:
            self.used = int(used)
        return response

    def close(self) -> None:
        pass  # shared by the demo's clients: closed once, at the end of the run


def _price(response: httpx.Response) -> int:
    """What the API would have charged: markets x regions, nothing for an empty list."""
    return 0 if response.content.strip() == b"[]" else PROFILE.cost(response.request)


def _span(seconds: float) -> str:
    whole = int(seconds)
    if whole >= 3600 and whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole >= 600:
        return f"{whole // 60}m"
    return f"{whole}s"


@dataclass
class Tally:
    requests: int = 0
    saved: int = 0
    hits: int = 0
    stale: int = 0


class Replay:
    """Makes the scenario's requests and prints one aligned line for each."""

    def __init__(self, api: Upstream, out: TextIO) -> None:
        self.api = api
        self.out = out
        self.tally = Tally()

    def say(self, text: str) -> None:
        print(f"\n{datetime.now(UTC):%H:%M}  {text}", file=self.out)

    def row(self, label: str, outcome: str, cost: int, left: int | None, note: str) -> None:
        print(
            f"  {datetime.now(UTC):%H:%M:%S}  {label:<20} {outcome:<8} cost {cost:>2}"
            f"  remaining {'?' if left is None else left:>3}  {note}",
            file=self.out,
        )

    def generator(self, client: httpx.Client) -> None:
        self.fetch(client, "", "sports list")
        for sport in SPORTS:
            self.fetch(client, sport, f"{NAMES[sport]} odds")

    def fetch(self, client: httpx.Client, sport: str, label: str) -> None:
        self.tally.requests += 1
        path = f"/v4/sports/{sport}/odds" if sport else "/v4/sports"
        response = client.get(HOST + path, params={"apiKey": API_KEY, **(PICKS if sport else {})})
        response.raise_for_status()
        info: ResponseInfo = response.extensions["quotaflow"]
        if info.cache == "hit":
            self.tally.hits += 1
            self.tally.saved += _price(response)
            sent = email.utils.parsedate_to_datetime(response.headers["date"])
            note = f"from cache, {_span((datetime.now(UTC) - sent).total_seconds())} old"
        elif info.cache == "stale":
            self.tally.stale += 1
            note = f"served stale ({info.stale_reason}), {_span(info.age or 0)} old"
        else:
            note = f"fresh for {_span(info.ttl or 0)}: {self._why(response, sport)}"
        self.row(label, info.cache, info.cost, info.remaining, note)

    @staticmethod
    def _why(response: httpx.Response, sport: str) -> str:
        """The fact the TTL policy read from the answer."""
        if not sport:
            return "the list of sports rarely changes"
        events: list[dict[str, str]] = response.json()
        if not events:
            return "no games (off-season), and free"
        first = min(datetime.fromisoformat(event["commence_time"]) for event in events)
        minutes = int((first - datetime.now(UTC)).total_seconds()) // 60
        return f"first game in {minutes // 60}h{minutes % 60:02d}m"

    def backtest(self, client: httpx.Client) -> None:
        """A low-priority script that wants more than the quota can spare for it."""
        self.tally.requests += 1
        params = {"apiKey": API_KEY, "date": "2026-11-22T18:00:00Z"}
        params |= {"regions": "us,uk,eu", "markets": "h2h,spreads,totals"}
        try:
            client.get(f"{HOST}/v4/historical/sports/americanfootball_nfl/odds", params=params)
        except QuotaExhausted as refused:
            left = refused.remaining or 0
            keep = int(PROFILE.reserves[Priority.LOW] * PLAN)
            note = (
                f"not sent: {left} - {refused.cost} = {left - refused.cost} < LOW's reserve {keep}"
            )
            self.row("NFL history (LOW)", "refused", refused.cost, refused.remaining, note)


def _files(directory: Path) -> list[Path]:
    return [path for path in sorted(directory.rglob("*")) if path.is_file()]


def _header(state_dir: Path, out: TextIO, temporary: bool) -> None:
    print("quotaflow demo: a Sunday morning of NFL/NBA picks, replayed offline", file=out)
    print(f"  plan   The Odds API free tier: {PLAN} credits a month, {USED_BEFORE} used", file=out)
    print(
        f"  state  {state_dir}{' (temporary, deleted at the end)' if temporary else ''}", file=out
    )
    print(f"  clock  simulated from {START:%a %Y-%m-%d %H:%M} UTC: nothing waits", file=out)


def _morning(replay: Replay, client: Callable[[], httpx.Client], shift: Shift) -> None:
    """The scenario: four runs of the picks generator, a second scraper, a backtest."""
    with client() as generator:
        replay.say("Run 1: the picks generator loads the slate (us region, h2h + spreads)")
        replay.generator(generator)
        shift(timedelta(minutes=1))
        replay.say("Another scraper, its own client on the same state dir, wants the same odds")
        with client() as scraper:
            for sport in ("americanfootball_nfl", "basketball_nba"):
                replay.fetch(scraper, sport, f"{NAMES[sport]} odds (scraper)")
        shift(timedelta(minutes=9))
        replay.say("Run 2: what expired is fetched again, each sport on its own TTL")
        replay.generator(generator)
        replay.say("A LOW-priority backtest wants 90 credits of last Sunday's closing lines")
        with priority("low"):
            replay.backtest(generator)
        shift(timedelta(minutes=10))
        replay.api.down = True
        replay.say(
            "Run 3: the API is down: requests retry with backoff, five failures in a row"
            " open the circuit, and the rest are answered from the cache at once"
        )
        replay.generator(generator)
        shift(timedelta(minutes=10))
        replay.api.down = False
        replay.say("Run 4: the API is back")
        replay.generator(generator)


def _summary(replay: Replay, state_dir: Path, out: TextIO) -> None:
    files = _files(state_dir)
    found = any(API_KEY.encode() in path.read_bytes() for path in files)
    tally, api = replay.tally, replay.api
    print(
        "\nSummary\n"
        f"  requests made             {tally.requests:>3}\n"
        f"  upstream calls            {api.answered:>3}   (+{api.failed} failed in the outage)\n"
        f"  quota units spent         {api.used - USED_BEFORE:>3}"
        f"   (the API's counter: {USED_BEFORE} -> {api.used} of {PLAN})\n"
        f"  units saved by the cache  {tally.saved:>3}   ({tally.hits} cache hits)\n"
        f"  stale answers served      {tally.stale:>3}\n"
        f"API key found in state: {'yes' if found else 'no'} ({len(files)} files scanned)",
        file=out,
    )


def run(
    state_dir: Path,
    out: TextIO,
    *,
    temporary: bool = False,
    upstream: httpx.BaseTransport | None = None,
) -> None:
    """Replay the morning with its state in ``state_dir``; print it to ``out``.

    ``upstream``: where requests go (default: the cassette). The recording script
    passes a recorder over the emulator, so that the cassette holds what this morning
    asks, at the moments it asks.
    """
    from quotaflow.testing import Replayer

    if upstream is None:
        upstream = Replayer(CASSETTE, profiles=[PROFILE]).transport()
    replay = Replay(Upstream(upstream), out)
    _header(state_dir, out, temporary)
    jitter = random.Random(2026)
    with time_machine.travel(START, tick=False) as traveller:

        def client() -> httpx.Client:
            return make_client(
                profiles=[PROFILE],
                plugins=False,
                state_dir=state_dir,
                transport=replay.api,
                # A limiter wait or a retry backoff moves the clock; the jitter is seeded.
                clock=Clock(sleep=traveller.shift, random=jitter.random),
            )

        _morning(replay, client, traveller.shift)
    upstream.close()
    _summary(replay, state_dir, out)
