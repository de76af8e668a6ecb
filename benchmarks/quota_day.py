"""Quota efficiency on a real day: what a picks generator spends with and without quotaflow.

The day is the recorded one (benchmarks/fixtures): Sunday 2026-10-25, 06:00-23:00 EDT,
replayed on a simulated clock (time-machine, tick=False: nothing sleeps) against
``replay.OddsApi`` (the recorded slates less finished games, live scores, a credit
counter, the 30/s frequency limit). The generator:

- asks for ``/v4/sports`` at the start (free);
- every 10 minutes, odds for 4 sports (NFL, NBA, MLB, NHL) in 2 regions and 3 markets
  (6 credits each, nothing when a sport has no game left);
- every 5 minutes while a sport has a game in play, its scores with ``daysFrom=1``
  (2 credits);
- three workers (threads) ask all of it at the same instant, each in its own order.

Variants: plain httpx; hishel alone (RFC mode: the API sends no caching headers, so
nothing is reused); requests-cache with a fixed ``expire_after`` of 10 minutes (driven
through requests-mock; a fixed-TTL dict cache of ours stands in if requests-cache is
missing, or with ``--fixed-ttl-dict``); quotaflow with the theoddsapi profile, one
client shared by the threads, and one client per worker on one state directory.

The lower bound is the number of distinct (resource, freshness window) pairs the
profile's freshness rule implies over the schedule: an ideal cache that fetches a
resource only when the window of its last answer has closed. quotaflow must equal it;
the script exits 1 if it spends more calls or credits. "Past freshness" counts answers
served older than the rule allows for them (what a fixed TTL trades for its savings).
Run::

    python benchmarks/quota_day.py
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import importlib.util
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hishel
import httpx
import time_machine
from common import RESULTS, json_arg, verdict, write_results
from hishel.httpx import CacheTransport
from replay import API_KEY, HOST, SPORTS, OddsApi, emulator

import quotaflow
from quotaflow_theoddsapi import PROFILE

EDT = -4 * 3600  # 2026-10-25 is daylight saving time in New York
ODDS = {"regions": "us,us2", "markets": "h2h,spreads,totals", "oddsFormat": "decimal"}
SCORES = {"daysFrom": "1"}
FIXED_TTL = 600.0
REAL_SLEEP = time.sleep  # time-machine does not patch sleep; kept explicit anyway


def edt(clock: str) -> float:
    """Epoch seconds of HH:MM EDT on the recorded day (past midnight: the next day)."""
    hours, minutes = (int(part) for part in clock.split(":"))
    return emulator.at(25, 0) - EDT + hours * 3600 + minutes * 60


@dataclass(frozen=True)
class Ask:
    path: str
    params: tuple[tuple[str, str], ...]

    @property
    def url(self) -> str:
        return str(httpx.URL(HOST + self.path, params=[*self.params, ("apiKey", API_KEY)]))


def in_play(sport: str, now: float) -> bool:
    return any(
        kickoff <= now < kickoff + emulator.DURATION[sport]
        for _, _, kickoff in emulator.SLATES[sport]
    )


def schedule(start: float, end: float) -> list[tuple[float, list[Ask]]]:
    """(moment, what each worker asks then), every 5 minutes from start to end."""
    ticks = []
    moment = start
    while moment <= end:
        asks = []
        if moment == start:
            asks.append(Ask("/v4/sports", ()))
        if (moment - start) % 600 == 0:
            asks += [Ask(f"/v4/sports/{s}/odds", tuple(ODDS.items())) for s in SPORTS]
        asks += [
            Ask(f"/v4/sports/{s}/scores", tuple(SCORES.items()))
            for s in SPORTS
            if in_play(s, moment)
        ]
        if asks:
            ticks.append((moment, asks))
        moment += 300
    return ticks


def policy_ttl(api: OddsApi, url: str, at: float) -> float | None:
    """Seconds of freshness the profile's rule gives the answer to ``url`` fetched at ``at``."""
    request = httpx.Request("GET", url)
    status, body, _ = api.body(request, at)
    if status != 200:
        return None
    response = httpx.Response(status, content=body, headers={"content-type": "application/json"})
    assert PROFILE.freshness is not None
    ttl = PROFILE.freshness(request, response, at)
    return None if ttl is None else float(int(ttl))  # stored as max-age=int(ttl)


def lower_bound(ticks: list[tuple[float, list[Ask]]]) -> tuple[int, int]:
    """(calls, credits) of an ideal cache: one call per (resource, freshness window)."""
    api = OddsApi(freq_limit=None)
    closes: dict[str, float] = {}
    calls = credits = 0
    for moment, asks in ticks:
        for ask in dict.fromkeys(asks):
            if moment < closes.get(ask.url, float("-inf")):
                continue
            ttl = policy_ttl(api, ask.url, moment)
            closes[ask.url] = moment + (ttl or 0.0)
            calls += 1
            credits += api.body(httpx.Request("GET", ask.url), moment)[2]
    return calls, credits


@dataclass
class Served:
    at: float
    url: str
    status: int
    date: float | None


@dataclass
class Outcome:
    name: str
    requests: int = 0
    upstream: int = 0
    credits: int = 0
    errors: int = 0
    past_freshness: int = 0
    served: list[Served] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


Fetch = Callable[[int, str], tuple[int, str | None]]  # (worker, url) -> (status, Date)


class Variant:
    """Builds the fetch function of one contender around a simulated API."""

    name = ""

    def open(
        self, api: OddsApi, traveller: Any, directory: Path, workers: int
    ) -> contextlib.AbstractContextManager[Fetch]:
        raise NotImplementedError


def _httpx_fetch(clients: list[httpx.Client]) -> Fetch:
    def fetch(worker: int, url: str) -> tuple[int, str | None]:
        response = clients[worker % len(clients)].get(url)
        return response.status_code, response.headers.get("date")

    return fetch


class Plain(Variant):
    name = "plain httpx"

    @contextlib.contextmanager
    def open(self, api: OddsApi, traveller: Any, directory: Path, workers: int) -> Iterator[Fetch]:
        with httpx.Client(transport=httpx.MockTransport(api.router().handler)) as client:
            yield _httpx_fetch([client])


class HishelAlone(Variant):
    name = "hishel alone (RFC)"

    @contextlib.contextmanager
    def open(self, api: OddsApi, traveller: Any, directory: Path, workers: int) -> Iterator[Fetch]:
        storage = hishel.SqliteStorage(database_path=directory / "hishel.db")
        transport = CacheTransport(
            httpx.MockTransport(api.router().handler),
            storage=storage,
            rfc=hishel.CacheOptions(shared=False),
        )
        with httpx.Client(transport=transport) as client:
            yield _httpx_fetch([client])


class RequestsCache(Variant):
    name = f"requests-cache ({FIXED_TTL:.0f} s)"

    @contextlib.contextmanager
    def open(self, api: OddsApi, traveller: Any, directory: Path, workers: int) -> Iterator[Fetch]:
        import requests_cache
        import requests_mock

        def content(request: Any, context: Any) -> bytes:
            answer = api.handler(httpx.Request("GET", request.url))
            context.status_code = answer.status_code
            context.headers = dict(answer.headers)
            content: bytes = answer.content
            return content

        adapter = requests_mock.Adapter()
        adapter.register_uri("GET", requests_mock.ANY, content=content)
        session = requests_cache.CachedSession(backend="memory", expire_after=FIXED_TTL)
        session.mount("https://", adapter)

        def fetch(worker: int, url: str) -> tuple[int, str | None]:
            response = session.get(url)
            return response.status_code, response.headers.get("date")

        try:
            yield fetch
        finally:
            session.close()


class FixedTtlDict(Variant):
    """A dict cache with a fixed TTL, as an httpx transport (no coalescing)."""

    name = f"fixed TTL dict ({FIXED_TTL:.0f} s)"

    @contextlib.contextmanager
    def open(self, api: OddsApi, traveller: Any, directory: Path, workers: int) -> Iterator[Fetch]:
        with httpx.Client(transport=_FixedTtl(httpx.MockTransport(api.router().handler))) as c:
            yield _httpx_fetch([c])


class _FixedTtl(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, int, list[tuple[bytes, bytes]], bytes]] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        key, now = str(request.url), time.time()
        with self._lock:
            found = self._entries.get(key)
        if found is not None and now < found[0]:
            return httpx.Response(found[1], headers=found[2], content=found[3])
        response = self._inner.handle_request(request)
        body = response.read()
        if response.status_code == 200:
            with self._lock:
                self._entries[key] = (now + FIXED_TTL, 200, response.headers.raw, body)
        return response


class Quotaflow(Variant):
    def __init__(self, clients: str) -> None:
        self.clients = clients
        self.name = (
            "quotaflow (1 client, threads)" if clients == "one" else "quotaflow (client per worker)"
        )

    @contextlib.contextmanager
    def open(self, api: OddsApi, traveller: Any, directory: Path, workers: int) -> Iterator[Fetch]:
        def sleep(seconds: float) -> None:
            # Waiting moves the simulated clock; a sliver of real time lets the
            # thread being waited for (another client's leader) get on.
            traveller.shift(seconds)
            REAL_SLEEP(min(seconds, 0.002))

        transport = httpx.MockTransport(api.router().handler)
        with contextlib.ExitStack() as stack:
            clients = [
                stack.enter_context(
                    quotaflow.make_client(
                        profiles=[PROFILE],
                        plugins=False,
                        state_dir=directory / "state",
                        transport=transport,
                        clock=quotaflow.Clock(sleep=sleep),
                    )
                )
                for _ in range(1 if self.clients == "one" else workers)
            ]
            yield _httpx_fetch(clients)


def run(
    variant: Variant, ticks: list[tuple[float, list[Ask]]], workers: int, directory: Path
) -> Outcome:
    outcome = Outcome(variant.name)
    api = OddsApi(plan=emulator.PLAN, used=0)
    barrier = threading.Barrier(workers)
    lock = threading.Lock()
    start = ticks[0][0]
    with (
        time_machine.travel(start, tick=False) as traveller,
        variant.open(api, traveller, directory, workers) as fetch,
        ThreadPoolExecutor(workers) as pool,
    ):

        def work(worker: int, moment: float, asks: list[Ask]) -> None:
            mine = list(asks)
            random.Random(f"{moment}-{worker}").shuffle(mine)
            barrier.wait()
            for ask in mine:
                try:
                    status, date = fetch(worker, ask.url)
                except Exception as exc:  # a contender failing is a result, not a crash
                    with lock:
                        outcome.errors += 1
                        if len(outcome.notes) < 3:
                            outcome.notes.append(f"{type(exc).__name__}: {exc}")
                    continue
                sent = email.utils.parsedate_to_datetime(date).timestamp() if date else None
                with lock:
                    outcome.requests += 1
                    outcome.errors += status != 200
                    outcome.served.append(Served(time.time(), ask.url, status, sent))

        for moment, asks in ticks:
            traveller.move_to(moment)
            list(pool.map(work, range(workers), [moment] * workers, [asks] * workers))
    outcome.upstream = api.calls
    outcome.credits = api.spent
    truth = OddsApi(freq_limit=None)
    for served in outcome.served:
        if served.status != 200 or served.date is None:
            continue
        ttl = policy_ttl(truth, served.url, served.date)
        if ttl is not None and int(served.at - served.date) >= ttl:
            outcome.past_freshness += 1
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--start", default="06:00", help="EDT, HH:MM (default %(default)s)")
    parser.add_argument("--end", default="23:00", help="EDT, HH:MM (default %(default)s)")
    parser.add_argument("--workers", type=int, default=3, help="threads asking the same things")
    parser.add_argument(
        "--fixed-ttl-dict",
        action="store_true",
        help="use our fixed-TTL dict cache even if requests-cache is installed",
    )
    parser.add_argument(
        "--json",
        type=json_arg,
        default=RESULTS,
        help="merge the results into this file ('-': none; default: %(default)s)",
    )
    args = parser.parse_args(argv)
    start, end = edt(args.start), edt(args.end)
    if end <= start:
        end += 86400
    ticks = schedule(start, end)
    bound_calls, bound_credits = lower_bound(ticks)

    have_requests_cache = all(
        importlib.util.find_spec(name) is not None for name in ("requests_cache", "requests_mock")
    )
    fixed: Variant = (
        RequestsCache() if have_requests_cache and not args.fixed_ttl_dict else FixedTtlDict()
    )
    variants: list[Variant] = [Plain(), HishelAlone(), fixed, Quotaflow("one"), Quotaflow("each")]
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, variant in enumerate(variants):
            directory = Path(tmp) / str(n)
            directory.mkdir()
            outcomes.append(run(variant, ticks, args.workers, directory))

    asks = sum(len(a) for _, a in ticks)
    print(
        f"quota day {args.start}-{args.end} EDT (Sunday 2026-10-25): {len(ticks)} ticks, "
        f"{asks} asks per worker, {args.workers} workers"
    )
    if not have_requests_cache:
        print("requests-cache or requests-mock is not installed: a fixed-TTL dict cache stands in")
    print(
        f"{'variant':<32}{'requests':>9}{'upstream':>9}{'credits':>9}{'x bound':>9}"
        f"{'past fresh':>11}{'errors':>8}"
    )
    print(
        f"{'lower bound (policy windows)':<32}{'':>9}{bound_calls:>9}{bound_credits:>9}"
        f"{1.0:>9.2f}{0:>11}{0:>8}"
    )
    rows: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        ratio = outcome.upstream / bound_calls if bound_calls else float("nan")
        print(
            f"{outcome.name:<32}{outcome.requests:>9}{outcome.upstream:>9}{outcome.credits:>9}"
            f"{ratio:>9.2f}{outcome.past_freshness:>11}{outcome.errors:>8}"
        )
        for note in outcome.notes:
            print(f"    {note}")
        rows[outcome.name] = {
            "requests": outcome.requests,
            "upstream": outcome.upstream,
            "credits": outcome.credits,
            "ratio_to_bound": ratio,
            "past_freshness": outcome.past_freshness,
            "errors": outcome.errors,
        }
    if bound_calls == asks:
        print(
            "every ask opens a window of its own (the rule's windows are shorter than the"
            " 5/10-minute cadence all day): a cache can only save the workers' duplicates"
        )
    ours = [o for o in outcomes if o.name.startswith("quotaflow")]
    wasted = [o for o in ours if o.upstream > bound_calls or o.credits > bound_credits or o.errors]
    for outcome in ours:
        ok = outcome not in wasted
        print(
            f"target: {outcome.name} = lower bound ({bound_calls} calls, {bound_credits} "
            f"credits), no errors: {outcome.upstream} calls, {outcome.credits} credits  "
            f"{verdict(ok)}"
        )
    write_results(
        args.json,
        "quota_day",
        {
            "window_edt": [args.start, args.end],
            "workers": args.workers,
            "lower_bound": {"upstream": bound_calls, "credits": bound_credits},
            "rows": rows,
        },
    )
    return 1 if wasted else 0


if __name__ == "__main__":
    sys.exit(main())
