"""quotaflow.testing: record against a server on 127.0.0.1, replay offline with the
quota emulated; the modes; streaming through the recorder; the pytest fixture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

import quotaflow
from quotaflow.testing import CassetteMiss, Recorder, Replayer, ReplaySession, read_cassette

from ..stub_server import StreamServer
from .odds_server import COST, KEY, LOCAL, REQUESTS, OddsServer

# What a server adds on its own and a replay cannot reproduce byte for byte.
UNCOMPARED = {"date", "server"}


def record(base: str, path: Path, state: Path, *, mode: Any = "once", requests=REQUESTS):
    """The requests through a quotaflow client with the recorder innermost."""
    recorder = Recorder(httpx.HTTPTransport(), path, mode=mode, profiles=[LOCAL])
    with quotaflow.make_client(
        profiles=[LOCAL], plugins=False, state_dir=state, config=False, transport=recorder
    ) as client:
        return [
            client.get(base + url, params={"apiKey": KEY, **params}) for url, params in requests
        ]


def run(client: httpx.Client, base: str, requests=REQUESTS) -> list[httpx.Response]:
    with client:
        return [
            client.get(base + url, params={"apiKey": KEY, **params}) for url, params in requests
        ]


def headers(response: httpx.Response) -> dict[str, str]:
    """The headers to compare, the key as the recorder writes it."""
    return {
        k: v.replace(KEY, "[secret]")
        for k, v in response.headers.items()
        if k not in UNCOMPARED | {"set-cookie"}
    }


def body(response: httpx.Response) -> bytes:
    """The body, the key (which the server echoes) as the recorder writes it."""
    return response.content.replace(KEY.encode(), b"[secret]")


@pytest.fixture
def recorded(tmp_path):
    """A cassette of REQUESTS recorded against the local Odds API, and what it answered."""
    cassette = tmp_path / "odds.json"
    with OddsServer() as server:
        answers = record(server.base, cassette, tmp_path / "rec")
    return cassette, server.base, answers


def test_round_trip_replays_bodies_headers_and_costs(recorded, tmp_path) -> None:
    """Recorded on 127.0.0.1, replayed with the server gone: the same bodies, headers
    and costs, and not one byte of the key in the cassette."""
    cassette, base, live = recorded
    session = ReplaySession(cassette, tmp_path / "replay", profiles=[LOCAL])

    replayed = run(session.client(), base)

    assert [r.content for r in replayed] == [body(r) for r in live]
    assert [headers(r) for r in replayed] == [headers(r) for r in live]
    assert [r.extensions["quotaflow"].cost for r in replayed] == [2 * 0, 2, 4, 2]
    assert [r.headers["x-requests-remaining"] for r in replayed] == ["400", "398", "394", "392"]
    assert session.spent == COST
    raw = cassette.read_bytes()
    assert KEY.encode() not in raw
    assert b"set-cookie" not in raw.lower()
    # The key the server echoed, scrubbed from the body.
    assert b'"requested_with": "[secret]"' in read_cassette(cassette)[1].body


def test_the_cassette_is_readable_json(recorded) -> None:
    """One JSON document: method, URL without the key, status, headers, text body, time."""
    cassette, base, _ = recorded
    document = json.loads(cassette.read_text())
    first = document["exchanges"][0]

    assert document["quotaflow_cassette"] == 1
    assert first["request"] == {"method": "GET", "url": f"{base}/v4/sports"}
    assert first["response"]["status"] == 200
    assert json.loads(first["response"]["body"])[0]["key"]
    assert first["at"].endswith("Z")
    assert [e.url for e in read_cassette(cassette)][2].endswith(
        "regions=us%2Cuk&markets=h2h%2Ctotals"
    )


def test_second_run_costs_nothing(recorded, tmp_path) -> None:
    """First run: the recorded costs; the second is answered by quotaflow's cache."""
    cassette, base, _ = recorded
    session = ReplaySession(cassette, tmp_path / "replay", profiles=[LOCAL])

    run(session.client(), base)
    first = session.spent
    again = run(session.client(), base)

    assert first == COST
    assert session.spent == COST
    assert {r.extensions["quotaflow"].cache for r in again} == {"hit"}


def test_the_query_order_and_the_key_do_not_matter(recorded, tmp_path) -> None:
    """Matched on method and URL without secrets, query order aside."""
    cassette, base, live = recorded
    session = ReplaySession(cassette, tmp_path / "replay", profiles=[LOCAL])
    url = f"{base}/v4/sports/basketball_nba/odds?markets=h2h,totals&apiKey=other&regions=us,uk"

    with session.client() as client:
        assert client.get(url).content == body(live[2])


def test_an_unrecorded_request_names_the_closest(recorded, tmp_path) -> None:
    """The error names the request and the closest recording, without the key."""
    cassette, base, _ = recorded
    session = ReplaySession(cassette, tmp_path / "replay", profiles=[LOCAL])
    params = {"apiKey": KEY, "regions": "eu", "markets": "h2h,spreads"}

    with session.client() as client, pytest.raises(CassetteMiss) as missed:
        client.get(f"{base}/v4/sports/americanfootball_nfl/odds", params=params)

    message = str(missed.value)
    assert "regions=eu" in message
    assert f"closest recorded: GET {base}/v4/sports/americanfootball_nfl/odds?" in message
    assert "regions=us" in message
    assert KEY not in message
    assert session.spent == 0


def test_async_round_trip(tmp_path) -> None:
    """The recorder and the replay under async clients."""
    import anyio

    cassette = tmp_path / "odds.json"

    async def go(base: str, make: Any) -> list[httpx.Response]:
        async with make() as client:
            return [
                await client.get(base + url, params={"apiKey": KEY, **params})
                for url, params in REQUESTS
            ]

    with OddsServer() as server:
        recorder = Recorder(httpx.AsyncHTTPTransport(), cassette, profiles=[LOCAL])
        live = anyio.run(
            go,
            server.base,
            lambda: quotaflow.make_async_client(
                profiles=[LOCAL], plugins=False, state_dir=tmp_path / "r", transport=recorder
            ),
        )
    session = ReplaySession(cassette, tmp_path / "replay", profiles=[LOCAL])
    replayed = anyio.run(go, server.base, session.async_client)

    assert [r.content for r in replayed] == [body(r) for r in live]
    assert session.spent == COST


# Modes ---------------------------------------------------------------------------------


def test_once_replays_an_existing_cassette_and_sends_nothing(tmp_path) -> None:
    """mode="once" with a cassette: answered from it, nothing sent, the rest refused."""
    cassette = tmp_path / "odds.json"
    with OddsServer() as server:
        live = record(server.base, cassette, tmp_path / "first")
        before, sent = cassette.read_bytes(), server.hits.total()
        again = record(server.base, cassette, tmp_path / "again")
        with pytest.raises(CassetteMiss):
            record(server.base, cassette, tmp_path / "more", requests=[("/v4/sports/x/odds", {})])

    assert server.hits.total() == sent
    assert [r.content for r in again] == [body(r) for r in live]
    assert cassette.read_bytes() == before


def test_new_episodes_appends_only_what_is_missing(tmp_path) -> None:
    """mode="new_episodes": recorded requests are not sent again; new ones are appended."""
    cassette = tmp_path / "odds.json"
    extra = ("/v4/sports/icehockey_nhl/odds", {"regions": "us"})
    with OddsServer() as server:
        record(server.base, cassette, tmp_path / "first")
        server.hits.clear()
        requests = [*REQUESTS, extra]
        record(server.base, cassette, tmp_path / "n", mode="new_episodes", requests=requests)

    assert dict(server.hits) == {"/v4/sports/icehockey_nhl/odds": 1}
    assert len(read_cassette(cassette)) == len(REQUESTS) + 1


def test_all_records_everything_anew(tmp_path) -> None:
    """mode="all": everything is sent, and the cassette holds only this session."""
    cassette = tmp_path / "odds.json"
    with OddsServer(used=7) as server:
        record(server.base, cassette, tmp_path / "first")
        server.hits.clear()
        record(server.base, cassette, tmp_path / "a", mode="all", requests=REQUESTS[:2])

    assert server.hits.total() == 2
    found = read_cassette(cassette)
    assert len(found) == 2
    assert dict(found[1].headers)["x-requests-used"] == str(7 + COST + 2)


def test_a_bad_mode_is_refused(tmp_path) -> None:
    """Only once, new_episodes and all."""
    with pytest.raises(ValueError, match="mode"):
        Recorder(httpx.HTTPTransport(), tmp_path / "c.json", mode="sometimes")  # type: ignore[arg-type]


# Streaming -----------------------------------------------------------------------------


def test_a_streamed_body_still_arrives_chunk_by_chunk(tmp_path) -> None:
    """The recorder tees the body: the first chunk reaches the caller before the server
    sends the rest; the whole body is recorded once the stream closes."""
    cassette = tmp_path / "stream.json"
    with StreamServer() as server:
        recorder = Recorder(httpx.HTTPTransport(), cassette, profiles=[])
        url = f"{server.base}/body?size=5000"
        with httpx.Client(transport=recorder) as client, client.stream("GET", url) as response:
            chunks = response.iter_raw()
            first = next(chunks)
            early = not server.release.is_set()
            server.release.set()
            body = first + b"".join(chunks)

    assert early, "the recorder held the body back"
    assert len(body) == 5000
    [found] = read_cassette(cassette)
    assert found.body == body


def test_a_stream_closed_early_is_not_recorded(tmp_path) -> None:
    """Half a body would replay as a lie: nothing is written."""
    cassette = tmp_path / "stream.json"
    with StreamServer() as server:
        server.release.set()
        recorder = Recorder(httpx.HTTPTransport(), cassette, profiles=[])
        url = f"{server.base}/body?size=5000"
        with httpx.Client(transport=recorder) as client, client.stream("GET", url) as response:
            next(response.iter_raw())

    assert not cassette.exists()


# The pytest fixture --------------------------------------------------------------------


def test_the_pytest_fixture(recorded, quotaflow_replay) -> None:
    """quotaflow_replay (the pytest11 plugin): clients over the cassette, what they cost."""
    cassette, base, _ = recorded
    replay = quotaflow_replay(cassette, profiles=[LOCAL])

    run(replay.client(), base)
    run(replay.client(), base)

    assert replay.spent == COST


# Details -------------------------------------------------------------------------------


def test_a_compressed_body_is_stored_decoded(tmp_path) -> None:
    """gzip is undone (a cassette stays readable); the replay answers the same JSON."""
    import gzip

    def api(request: httpx.Request) -> httpx.Response:
        body = gzip.compress(b'{"ok": true}')
        return httpx.Response(200, content=body, headers={"content-encoding": "gzip"})

    cassette = tmp_path / "gz.json"
    with httpx.Client(transport=Recorder(httpx.MockTransport(api), cassette, profiles=[])) as c:
        assert c.get("https://api.example.com/x").json() == {"ok": True}
    [found] = read_cassette(cassette)
    replayer = Replayer(cassette, profiles=[])
    with httpx.Client(transport=replayer.transport()) as client:
        replayed = client.get("https://api.example.com/x")

    assert found.body == b'{"ok": true}'
    assert "content-encoding" not in dict(found.headers)
    assert json.loads(cassette.read_text())["exchanges"][0]["response"]["body"] == '{"ok": true}'
    assert replayed.json() == {"ok": True}


def test_binary_bodies_and_credentials_in_headers(tmp_path) -> None:
    """A body that is not UTF-8 is stored as base64; Authorization and userinfo never
    reach the file, nor a token the server echoes in a header."""
    token = "tok-" + "z" * 20

    def api(request: httpx.Request) -> httpx.Response:
        echo = request.headers.get("authorization", "")
        return httpx.Response(200, content=b"\xff\x00\xfe", headers={"x-echo": f"got {echo}"})

    cassette = tmp_path / "bin.json"
    recorder = Recorder(httpx.MockTransport(api), cassette, profiles=[])
    with httpx.Client(transport=recorder) as client:
        client.get("https://api.example.com/b", headers={"authorization": f"Bearer {token}"})
        client.get("https://me:pw-long@api.example.com/c")  # userinfo: httpx sends Basic auth

    raw = cassette.read_bytes()
    assert token.encode() not in raw
    assert b"pw-long" not in raw
    assert b"bWU6cHctbG9uZw" not in raw  # me:pw-long, as the Basic auth httpx made of it
    assert "body_base64" in json.loads(raw)["exchanges"][0]["response"]
    assert read_cassette(cassette)[0].body == b"\xff\x00\xfe"


def test_importing_the_pytest_plugin_needs_no_respx() -> None:
    """The pytest11 entry point loads in every pytest run: it must stay light."""
    import subprocess
    import sys

    code = "import sys, quotaflow.testing._pytest, quotaflow.testing; print('respx' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_the_public_surface() -> None:
    """quotaflow.testing.__all__ is sorted and names everything public."""
    import quotaflow.testing

    public = {name for name in dir(quotaflow.testing) if not name.startswith(("_", "@"))}
    assert quotaflow.testing.__all__ == sorted(quotaflow.testing.__all__)
    assert public - {"annotations"} == set(quotaflow.testing.__all__)


def test_the_account_starts_at_the_first_answer_that_reports_it(tmp_path) -> None:
    """An error without quota headers first: the account still starts where the first
    reporting answer says, and each answer's headers count on from there."""
    from quotaflow.testing import Exchange

    nfl = "http://127.0.0.1/v4/sports/americanfootball_nfl/odds"
    quota = (("x-requests-remaining", "90"), ("x-requests-used", "10"), ("x-requests-last", "2"))
    cassette = [
        Exchange(0.0, "GET", f"{nfl}?markets=nope", 422, (("content-type", "a/j"),), b"{}"),
        Exchange(1.0, "GET", f"{nfl}?markets=h2h,spreads", 200, quota, b"[1]"),
    ]
    replayer = Replayer(cassette, profiles=[LOCAL])
    with httpx.Client(transport=replayer.transport()) as client:
        assert client.get(f"{nfl}?markets=nope").status_code == 422
        first = client.get(f"{nfl}?markets=h2h,spreads")
        again = client.get(f"{nfl}?markets=h2h,spreads")

    assert [first.headers["x-requests-remaining"], first.headers["x-requests-used"]] == ["90", "10"]
    assert [again.headers["x-requests-remaining"], again.headers["x-requests-used"]] == ["88", "12"]
    assert replayer.spent == replayer.spent_by("theoddsapi") == 4
    assert replayer.now() == 1.0
