"""A seeded header fuzzer through the whole stack (issue 13, "done when").

Thousands of generated answers (any status; Cache-Control with absurd numbers;
Expires/Date/Age garbage; non-ASCII validators; Vary; Content-Encoding lies; Location
and Set-Cookie carrying secrets; x-requests-* and RateLimit headers with absurd values;
Retry-After garbage; bodies cut off mid-stream; gzip that is not gzip) go through
``make_client`` and ``make_async_client`` on SQLite and on Redis, to The Odds API's
profile, an ``[apis.NAME]`` profile from a config file and an unprofiled host.

The run is split into episodes, each on a fresh state (a new directory or a new Redis
prefix). After every hostile answer a plain request to the same host must still work.
After every episode: no secret in any state file, Redis key or value, log record or
exception message; and where no answer of the episode carried a quota reading (the
ledger believes the API's own numbers, docs/reliability.md row 11) the ledger shows at
least what the requests cost upstream (a 401 or 403 costs nothing, as the APIs charge).

The only exceptions allowed out of a request are the documented ones:
``QuotaExhausted`` (when the API's own numbers leave less than the cost), ``RateLimited``
and ``CircuitOpen`` (after a 429 / Retry-After or failures in a row; they name a
``retry_after`` after which the next request works), and the errors plain httpx raises
for the same answer: ``httpx.DecodingError`` for a body that lies about its encoding and
the transport error upstream raised for a body cut off mid-stream.

``QF_FUZZ_SEED`` and ``QF_FUZZ_EPISODES`` change the seed and the length of a run
(default: 1313, and enough episodes for about 5 s per parameter in CI).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import random
import socket
import sqlite3
import textwrap
import threading
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import time_machine

import quotaflow

from ..conftest import files_under
from ..stub_server import REDIS_URL

SEED = int(os.environ.get("QF_FUZZ_SEED", "1313"))
EPISODES = int(os.environ.get("QF_FUZZ_EPISODES", "0")) or None
ROUNDS = 8  # hostile answers per episode, each followed by a plain request

KEY = "KEY-9c1e5a7b3d2f"
PASSWORD = "PW-3e8a1c9d7b5f"
COOKIE = "COOKIE-6d2b8f4a0c1e"
SECRETS = (KEY, PASSWORD, COOKIE)

EPISODE_START = datetime(2026, 11, 5, 12, tzinfo=UTC)
ODDS = "https://api.the-odds-api.com"
TOML = "https://fuzz.test"
PLAIN = "https://plain.test"
TOML_TEXT = textwrap.dedent(
    """
    [apis.fuzz]
    hosts = ["fuzz.test"]
    headers = "ratelimit"
    quota = { limit = 1000000, period = "month" }
    rates = [{ limit = 50, per = "1s" }]
    ttl = "30s"
    max_stale = "1h"
    """
)
QUOTA_HEADERS = (
    "x-requests-remaining",
    "x-requests-used",
    "x-requests-last",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-used",
    "ratelimit",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit-policy",
)

ABSURD_NUMBERS = [
    "0",
    "-1",
    "1",
    "60",
    str(2**53),
    str(2**64),
    "9" * 400,
    "1" + "0" * 400,
    "1e309",
    "NaN",
    "inf",
    "12abc",
    "",
    " 7 ",
    "0x10",
    "\u00e9",
    "1,2",
]
BAD_DATES = [
    "Thu, 01 Jan 1970 00:00:00 GMT",
    "Fri, 31 Dec 9999 23:59:59 GMT",
    "Mon, 01 Jan 0001 00:00:00 GMT",
    "Sun, 29 Nov 2026 13:00:00 GMT",
    "Sun, 29 Nov 2026 11:58:00 GMT",
    "yesterday",
    "0",
    "-1",
    "\u00e9t\u00e9",
    "Sun, 29 Nov 2026 12:00:00 GMT" + "x" * 300,
]


class Cut(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that stops half-way with the error a dropped connection gives."""

    def __init__(self, head: bytes) -> None:
        self.head = head

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.head
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


def pick(rng: random.Random, values: list[str]) -> str:
    return values[rng.randrange(len(values))]


def hostile_answer(rng: random.Random, quiet: bool) -> dict[str, Any]:
    """One generated answer: status, headers (name, bytes), body kind. ``quiet``: no
    quota reading in it."""
    status = rng.choice(
        [200] * 8
        + [203, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 410, 429]
        + [500, 502, 503, 504, 599]
    )
    headers: list[tuple[str, bytes]] = []

    def add(name: str, value: str, encoding: str = "utf-8") -> None:
        headers.append((name, value.encode(encoding, "replace")))

    if rng.random() < 0.7:
        add(
            "cache-control",
            pick(
                rng,
                [
                    "max-age=" + "9" * 5000,
                    "max-age=1" + "0" * 400,
                    "max-age=" + str(2**64),
                    "max-age=-1",
                    "max-age=abc",
                    'max-age="30"',
                    "max-age=60",
                    "max-age=0",
                    "s-maxage=99999999999999999999, max-age=5",
                    "no-store",
                    "no-cache",
                    "private, max-age=60",
                    "public, max-age=60, must-revalidate",
                    "stale-while-revalidate=1e309, max-age=1",
                    "stale-if-error=" + "9" * 100,
                    ",,,=,",
                    "max-age=60, max-age=0",
                    "max-age=\u00e960",
                ],
            ),
        )
    for name in ("expires", "date"):
        if rng.random() < 0.3:
            add(name, pick(rng, BAD_DATES))
    if rng.random() < 0.3:
        add("age", pick(rng, ABSURD_NUMBERS))
    if rng.random() < 0.35:
        add(
            "etag",
            pick(rng, ['"caf\u00e9"', '"\u2603"', '"ok"', 'W/"x"', "", '"' + "e" * 5000 + '"']),
            rng.choice(["utf-8", "latin-1"]),
        )
    if rng.random() < 0.3:
        add("last-modified", pick(rng, [*BAD_DATES, "Sun, 29 Nov 2026 11:00:00 GMT \u00e9"]))
    if rng.random() < 0.25:
        add(
            "vary",
            pick(rng, ["*", "Accept-Encoding", "Authorization", "Cookie", "x-" * 300, "\u00e9"]),
        )
    if rng.random() < 0.3:
        add(
            "location",
            pick(
                rng,
                [
                    f"{ODDS}/v4/next?apiKey={KEY}",
                    f"{TOML}/next?APIKEY={KEY}&x=1",
                    f"https://user:{PASSWORD}@plain.test/next",
                    f"/relative?api_key={KEY}",
                    f"//evil.test/?key={KEY}",
                    "http://[::1",
                    "ht tp://\u00e9",
                    "",
                    f"https://user:{PASSWORD}@[bad/",
                ],
            ),
        )
    if rng.random() < 0.3:
        add(
            "content-location",
            pick(rng, [f"https://u:{PASSWORD}@plain.test/x?apikey={KEY}", "::::", "\u00e9"]),
        )
    if rng.random() < 0.2:
        add("link", f'<{PLAIN}/next?token={KEY}>; rel="next", <http://[::1>; rel="prev"')
    for _ in range(rng.choice([0, 0, 1, 2])):
        add(
            "set-cookie",
            pick(rng, [f"sid={COOKIE}; Path=/", f"a={COOKIE}; Max-Age=99999999999999999", "=;;"]),
        )
    if not quiet:
        for name in QUOTA_HEADERS:
            if rng.random() < 0.25:
                value = pick(rng, ABSURD_NUMBERS)
                if name == "ratelimit" and rng.random() < 0.5:
                    value = f"limit={value}, remaining={pick(rng, ABSURD_NUMBERS)}, reset=9"
                add(name, value)
    if status in (429, 503) or rng.random() < 0.1:
        add(
            "retry-after",
            pick(rng, ["0", "-1", "2", "9" * 100, "1e309", "NaN", *BAD_DATES[:3], "soon"]),
        )

    body_kind = rng.choice(
        ["json"] * 4 + ["empty", "list", "bytes", "gzip", "gzip-lie", "gzip-cut", "cut", "error"]
    )
    if quiet and body_kind in ("list", "error"):
        # Readings too: an empty Odds list costs nothing; an Odds error body may say
        # the quota is used up.
        body_kind = "json"
    if body_kind == "gzip":
        add("content-encoding", "gzip")
    elif body_kind in ("gzip-lie", "gzip-cut"):
        add("content-encoding", pick(rng, ["gzip", "deflate", "br", "gzip, gzip", "x-nonsense"]))
    elif rng.random() < 0.05:
        add("content-encoding", pick(rng, ["identity", "x-nonsense", "\u00e9"]))
    if rng.random() < 0.1:
        add("content-length", pick(rng, ["0", "-1", "99999999999999", "abc"]))
    return {"status": status, "headers": headers, "body": body_kind, "n": rng.randrange(10**6)}


def short(spec: dict[str, Any]) -> str:
    """An answer's description with long header values cut, for failure messages."""
    headers = [(name, value[:60]) for name, value in spec["headers"]]
    return f"{spec['status']} {spec['body']} {headers}"


def body_bytes(spec: dict[str, Any]) -> bytes:
    """The answer's body as sent (before any decoding a Content-Encoding asks for)."""
    payload = json.dumps({"n": spec["n"], "events": []}).encode()
    error = {"message": "Usage quota has been reached", "error_code": "OUT_OF_USAGE_CREDITS"}
    bodies = {
        "empty": b"",
        "list": b"[]",
        "bytes": bytes(range(256)),
        "gzip": gzip.compress(payload),
        "gzip-lie": payload,
        "gzip-cut": gzip.compress(payload)[:12],
        "cut": payload[:5],
        "error": json.dumps(error).encode(),
    }
    return bodies.get(spec["body"], payload)


def render(spec: dict[str, Any]) -> httpx.Response:
    headers = list(spec["headers"])
    if spec["body"] == "error":
        headers.append(("content-type", b"application/json"))
    if spec["body"] == "cut":
        return httpx.Response(spec["status"], headers=headers, stream=Cut(body_bytes(spec)))
    return httpx.Response(spec["status"], headers=headers, content=body_bytes(spec))


# A 401 or 403 that is not the quota running out is charged nothing, as the APIs charge
# it (issue 14); every other call costs what the profile estimates (1 here).
FREE = (401, 403)


class Upstream:
    """Answers every request with the answer set for it, counting per host the calls an
    API charges for."""

    def __init__(self) -> None:
        self.answer: dict[str, Any] | None = None
        self.calls: Counter[str] = Counter()
        self.revalidations = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        answer = self.answer
        if answer is None:
            self.calls[request.url.host] += 1
            body = {"ok": request.url.path}
            return httpx.Response(200, json=body, headers={"cache-control": "max-age=60"})
        conditional = {"if-none-match", "if-modified-since"} & set(request.headers)
        if conditional and answer["n"] % 2:
            # Half the revalidations are answered "not modified", with the same hostile
            # headers (merged into the stored answer's).
            self.revalidations += 1
            answer = {**answer, "status": 304, "body": "empty"}
        if answer["status"] not in FREE:
            self.calls[request.url.host] += 1
        return render(answer)


def url_for(host: str, path: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A URL on ``host`` and the request's keyword arguments, carrying the key (and on
    the unprofiled host sometimes a password or an Authorization header). The Odds API
    and the [apis] profile charge 1 unit for each."""
    if host == ODDS:
        return f"{ODDS}/v4/sports/nfl/odds{path}?regions=us&apiKey={KEY}", {}
    if host == TOML:
        return f"{TOML}/v1{path}?key={KEY}", {}
    if rng.random() < 0.3:
        return f"https://user:{PASSWORD}@plain.test/v1{path}", {}
    if rng.random() < 0.3:
        return f"{PLAIN}/v1{path}", {"headers": {"authorization": f"Bearer {KEY}"}}
    return f"{PLAIN}/v1{path}?APIKEY={KEY}", {}


def spent(backend: str, where: str, profile: str) -> int:
    """Units the ledger counts as spent on ``profile`` (its rows for every credential,
    ``NAME#fingerprint``): used plus reserved in flight."""
    total = 0
    if backend == "sqlite":
        with sqlite3.connect(Path(where) / "state.db") as db:
            match = "profile = ? OR profile LIKE ? || '#%'"
            for row in db.execute(
                f"SELECT total, remaining FROM quota WHERE {match}", (profile,) * 2
            ):
                total += int(row[0] - row[1])
            (inflight,) = db.execute(
                f"SELECT COALESCE(SUM(cost), 0) FROM inflight WHERE {match}", (profile,) * 2
            ).fetchone()
        return total + int(inflight)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for pattern in (f"{where}:quota:{profile}", f"{where}:quota:{profile}#*"):
            for key in client.scan_iter(match=pattern):
                row = client.hgetall(key)
                total += int(float(row[b"total"])) - int(float(row[b"remaining"]))
        for pattern in (f"{where}:inflight:{profile}", f"{where}:inflight:{profile}#*"):
            for key in client.scan_iter(match=pattern):
                total += sum(int(value.split(b":")[0]) for value in client.hvals(key))
    finally:
        client.close()
    return total


def scan_state(backend: str, where: str) -> None:
    if backend == "sqlite":
        for path, content in files_under(Path(where)).items():
            for secret in SECRETS:
                assert secret.encode() not in content, f"{secret} in {path}"
        return
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for key in client.scan_iter(match=f"{where}*"):
            blob = key + (client.dump(key) or b"")
            for secret in SECRETS:
                assert secret.encode() not in blob, f"{secret} in Redis under {key!r}"
    finally:
        client.close()


ALLOWED = (
    quotaflow.QuotaExhausted,
    quotaflow.RateLimited,
    quotaflow.CircuitOpen,
    httpx.DecodingError,
    httpx.RemoteProtocolError,
)


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_hostile_answers_through_the_whole_stack(
    request: pytest.FixtureRequest,
    stack: Any,
    tmp_path: Path,
    traveller: time_machine.Traveller,
    caplog: pytest.LogCaptureFixture,
    backend: str,
) -> None:
    """Seeded hostile answers: only documented exceptions, every next request works, no
    secret stored or logged, the ledger never below what was spent upstream."""
    from quotaflow_theoddsapi import PROFILE

    caplog.set_level(logging.DEBUG)
    config = tmp_path / "quotaflow.toml"
    config.write_text(TOML_TEXT)
    rng = random.Random(f"{SEED}-{backend}")
    episodes = EPISODES or (30 if backend == "sqlite" else 20)
    upstream = Upstream()
    outcomes: Counter[str] = Counter()
    unexpected: list[str] = []
    messages: list[str] = []  # the documented exceptions' reprs, scanned for secrets
    names = {ODDS: "theoddsapi", TOML: "fuzz"}
    prefix = request.getfixturevalue("prefix") if backend == "redis" else ""

    for episode in range(episodes):
        quiet = episode % 3 == 0  # a third of the episodes carry no quota reading
        # Each episode in one quota period: pauses and cool-downs move the clock by up
        # to 16 days an episode, and a new period rightly starts a new ledger row.
        traveller.move_to(EPISODE_START)
        if backend == "sqlite":
            where = str(tmp_path / f"state-{episode}")
            settings: dict[str, Any] = {"state_dir": where}
        else:
            where = f"{prefix}-{episode}"
            settings = {"state_dir": tmp_path / f"state-{episode}", "redis_url": REDIS_URL}
            settings["redis_prefix"] = where
        client = stack(
            profiles=[PROFILE],
            config=config,
            transport=httpx.MockTransport(upstream),
            **settings,
        )
        upstream.calls.clear()
        exhausted: set[str] = set()
        for n in range(ROUNDS):
            host = rng.choice([ODDS, TOML, PLAIN])
            if host in exhausted:
                continue
            spec = hostile_answer(rng, quiet)
            upstream.answer = spec
            url, kwargs = url_for(host, f"/{episode}/{rng.randrange(3)}", rng)
            priority = rng.choice(["critical", "critical", "normal", "low"])
            try:
                response = client.get(url, extensions={"priority": priority}, **kwargs)
                outcomes[f"{response.status_code // 100}xx"] += 1
            except ALLOWED as exc:
                outcomes[type(exc).__name__] += 1
                messages.append(repr(exc))
            except Exception:  # what the fuzzer is looking for
                unexpected.append(f"{short(spec)} {url}\n{traceback.format_exc(limit=-4)}")
                continue

            # The next plain request to the same host works (after the pause or the
            # cool-down a hostile answer asked for; not if the API's numbers say no).
            upstream.answer = None
            follow, kwargs = url_for(host, f"/ok/{episode}/{n}", rng)
            for attempt in range(3):
                refusal: quotaflow.QuotaflowError | None = None
                try:
                    answer = client.get(follow, extensions={"priority": "critical"}, **kwargs)
                except (
                    quotaflow.RateLimited,
                    quotaflow.CircuitOpen,
                    quotaflow.QuotaExhausted,
                ) as exc:
                    refusal = exc
                    messages.append(repr(exc))
                except Exception:
                    unexpected.append(
                        f"follow-up after {short(spec)}\n{traceback.format_exc(limit=-4)}"
                    )
                    break
                if isinstance(refusal, quotaflow.RateLimited | quotaflow.CircuitOpen):
                    assert attempt < 2, f"still refused after waiting: {refusal!r} <- {spec}"
                    traveller.shift(refusal.retry_after + 1)
                    continue
                if isinstance(refusal, quotaflow.QuotaExhausted):
                    # Only when the API's own numbers say so (a reading, or its error).
                    assert not quiet, f"refused with no quota reading: {refusal!r} <- {spec}"
                    assert refusal.remaining is not None
                    assert refusal.remaining < refusal.cost
                    exhausted.add(host)
                    break
                assert answer.status_code == 200, spec
                assert answer.json() == {"ok": httpx.URL(follow).path}
                break
            traveller.shift(rng.choice([0, 1, 31, 61]))
        client.close()

        scan_state(backend, where)
        if quiet:
            for host, name in names.items():
                host_name = httpx.URL(host).host
                assert spent(backend, where, name) >= upstream.calls[host_name], (episode, name)

    for text in messages:
        for secret in SECRETS:
            assert secret not in text, f"{secret} in an exception: {text[:300]}"
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        for secret in SECRETS:
            assert secret not in text, f"{secret} logged: {text[:300]}"
    print(dict(outcomes), "304s to revalidations:", upstream.revalidations)
    assert unexpected == [], "\n".join(unexpected[:20])
    assert sum(outcomes.values()) >= episodes * ROUNDS * 2 // 3, outcomes


@pytest.mark.parametrize("value", ["caf\u00e9".encode(), "caf\u00e9".encode("latin-1")])
def test_a_stored_non_ascii_header_does_not_break_the_stale_answer(
    stack: Any, router: Any, traveller: time_machine.Traveller, value: bytes
) -> None:
    """Found by the fuzzer: an answer stored with a non-ASCII header (any header, not
    only a validator), once stale, is still served when upstream fails (choosing it
    built ``httpx.Headers`` from its str values, which httpx encodes as ASCII)."""
    from ..conftest import BASE, info

    route = router.get(f"{BASE}/note").respond(200, json={"v": 1}, headers=[(b"x-note", value)])
    client = stack()
    assert client.get(f"{BASE}/note").json() == {"v": 1}
    traveller.shift(120)  # the profile keeps it fresh for 60 s
    route.respond(503)

    answer = client.get(f"{BASE}/note")

    assert answer.json() == {"v": 1}
    assert info(answer).cache == "stale"
    assert route.call_count == 2


class RawServer:
    """A socket server answering each connection with the raw bytes of ``answer`` (a
    hostile answer as generated above, its body cut short by a Content-Length that
    promises more where the answer is cut), or a plain 200 for paths under ``/ok/``."""

    def __init__(self) -> None:
        self.answer: dict[str, Any] | None = None
        self.calls = 0
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            with connection:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    head += chunk
                self.calls += 1
                path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"/"
                with contextlib.suppress(OSError):
                    connection.sendall(self._bytes(path.startswith(b"/ok/")))

    def _bytes(self, plain: bool) -> bytes:
        if plain or self.answer is None:
            body = b'{"ok": true}'
            return (
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"cache-control: max-age=60\r\nconnection: close\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
        spec = self.answer
        body = body_bytes(spec)
        promised = len(body) + (100 if spec["body"] in ("cut", "gzip-cut") else 0)
        lines = [b"HTTP/1.1 %d Whatever" % spec["status"], b"connection: close"]
        lines += [name.encode() + b": " + value for name, value in spec["headers"]]
        lines.append(b"content-length: %d" % promised)
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    def close(self) -> None:
        self._socket.close()


SOCKET_ALLOWED = (
    *ALLOWED,
    httpx.RemoteProtocolError,  # h11 refuses what no HTTP/1.1 peer may send
    httpx.ReadError,
)


def test_hostile_answers_over_a_real_socket(
    stack: Any, tmp_path: Path, traveller: time_machine.Traveller, caplog: pytest.LogCaptureFixture
) -> None:
    """The same answers as raw bytes through httpx's own HTTP/1.1 transport (h11): bodies
    shorter than their Content-Length, duplicate Content-Length headers, non-ASCII header
    bytes. Only documented exceptions (and what h11 refuses, as plain httpx would); the
    next plain request works; no secret stored or logged."""
    caplog.set_level(logging.DEBUG)
    server = RawServer()
    rng = random.Random(f"{SEED}-socket")
    unexpected: list[str] = []
    messages: list[str] = []  # the documented exceptions' reprs, scanned for secrets
    try:
        client = stack(
            transport=None, state_dir=tmp_path / "state", secret_params=("token",), timeout=5
        )
        for n in range(EPISODES or 60):
            spec = server.answer = hostile_answer(rng, quiet=rng.random() < 0.5)
            try:
                client.get(f"{server.base}/hostile/{n % 7}?apikey={KEY}")
            except SOCKET_ALLOWED as exc:
                messages.append(repr(exc))
            except Exception:  # what the fuzzer is looking for
                unexpected.append(f"{short(spec)}\n{traceback.format_exc(limit=-4)}")
            answer = client.get(f"{server.base}/ok/{n}?apikey={KEY}")
            assert answer.json() == {"ok": True}
            traveller.shift(rng.choice([0, 1, 61]))
        client.close()
    finally:
        server.close()
    scan_state("sqlite", str(tmp_path / "state"))
    for text in messages:
        for secret in SECRETS:
            assert secret not in text, f"{secret} in an exception: {text[:300]}"
    for record in caplog.records:
        if record.name.startswith("httpcore"):
            continue  # its DEBUG trace shows the live answer's headers, as under plain httpx
        text = record.getMessage() + (record.exc_text or "")
        for secret in SECRETS:
            assert secret not in text, f"{secret} logged: {text[:300]}"
    assert unexpected == [], "\n".join(unexpected[:20])
