"""The plugin through quotaflow's whole stack, against a respx mock of the API."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path

import httpx
import pytest
import respx
import time_machine

import quotaflow
from quotaflow_theoddsapi import PLUGIN, PROFILE, samples

HOST = "api.the-odds-api.com"
BASE = f"https://{HOST}"
SPORT = "americanfootball_nfl"
ODDS = f"/v4/sports/{SPORT}/odds"
SCORES = f"/v4/sports/{SPORT}/scores"
SECRET = "SECRET-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
QUERY = {"regions": "us", "markets": "h2h,spreads"}
HOUR = 3600


def _client(tmp_path: Path, router: respx.Router) -> httpx.Client:
    return quotaflow.make_client(
        profiles=[PROFILE],
        plugins=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
    )


def _odds_body(start: float, kick_off_in: float) -> bytes:
    return samples.odds(
        [
            samples.event(SPORT, "Kansas City Chiefs", "Buffalo Bills", start + kick_off_in),
            samples.event(SPORT, "Dallas Cowboys", "New York Giants", start + 30 * HOUR),
        ]
    )


def _stored_bytes(tmp_path: Path) -> dict[str, bytes]:
    return {str(path): path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}


def _info(response: httpx.Response) -> quotaflow.ResponseInfo:
    info = response.extensions["quotaflow"]
    assert isinstance(info, quotaflow.ResponseInfo)
    return info


def test_odds_miss_then_hit(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """A first /odds call spends what x-requests-last says; the same call again is a free hit."""
    body = _odds_body(start, 2 * HOUR)
    route = router.get(host=HOST, path=ODDS).mock(
        return_value=samples.response(body, used=42, remaining=458, last=2)
    )
    with _client(tmp_path, router) as client:
        first = client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
        assert first.status_code == 200
        assert first.content == body
        assert route.call_count == 1
        info = _info(first)
        assert info.profile == "theoddsapi"
        assert info.cache == "miss"
        assert info.cost == 2
        assert info.remaining == 458
        assert info.ttl == 120  # the nearest kick-off is 2 h away
        assert first.headers["cache-control"] == "max-age=120"

        traveller.shift(119)
        second = client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
        assert route.call_count == 1
        assert second.content == body
        assert second.headers["x-requests-remaining"] == "458"
        info = _info(second)
        assert info.cache == "hit"
        assert info.cost == 0
        assert info.remaining == 458
        assert info.ttl == 120


def test_odds_refetched_once_stale(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """Past its ttl an /odds answer is fetched again, with the ttl the new kick-off gives."""
    route = router.get(host=HOST, path=ODDS)
    route.side_effect = [
        samples.response(_odds_body(start, 2 * HOUR), used=42, remaining=458, last=2),
        samples.response(_odds_body(start, 2 * HOUR), used=44, remaining=456, last=2),
    ]
    with _client(tmp_path, router) as client:
        client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
        traveller.shift(HOUR + 1)  # kick-off now under an hour away
        again = client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
        assert route.call_count == 2
        info = _info(again)
        assert info.cache == "miss"
        assert info.cost == 2
        assert info.remaining == 456
        assert info.ttl == 60


@pytest.mark.parametrize("name", ["apiKey", "api_key"])
def test_key_reaches_upstream_but_never_the_disk(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float, name: str
) -> None:
    """The key goes upstream unchanged, never into a stored file, and not into the cache key."""
    body = _odds_body(start, 2 * HOUR)
    route = router.get(host=HOST, path=ODDS).mock(
        return_value=samples.response(body, used=42, remaining=458, last=2)
    )
    with _client(tmp_path, router) as client:
        key_first = client.get(BASE + ODDS, params=[(name, SECRET), *QUERY.items()])
        assert route.call_count == 1
        assert route.calls.last.request.url.params[name] == SECRET
        assert _info(key_first).cache == "miss"

        key_last = client.get(BASE + ODDS, params=[*reversed(QUERY.items()), (name, SECRET)])
        assert route.call_count == 1
        assert _info(key_last).cache == "hit"
        assert key_last.content == body

        files = _stored_bytes(tmp_path)
        assert any(path.endswith("-wal") for path in files)
        assert any(b"regions=us" in content for content in files.values())  # the stored request
        for path, content in files.items():
            assert SECRET.encode() not in content, path
    files = _stored_bytes(tmp_path)
    assert files
    for path, content in files.items():
        assert SECRET.encode() not in content, path


def test_another_key_shares_the_entry(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """The key is not part of the cache key: another key reads the same entry."""
    route = router.get(host=HOST, path=ODDS).mock(
        return_value=samples.response(_odds_body(start, 2 * HOUR), used=42, remaining=458, last=2)
    )
    with _client(tmp_path, router) as client:
        client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
        other = client.get(BASE + ODDS, params={**QUERY, "apiKey": "another-key"})
        assert route.call_count == 1
        assert _info(other).cache == "hit"


def test_different_markets_are_different_entries(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """Requests that differ in anything but the key do not share an entry."""
    route = router.get(host=HOST, path=ODDS).mock(
        return_value=samples.response(_odds_body(start, 2 * HOUR), used=42, remaining=458, last=2)
    )
    with _client(tmp_path, router) as client:
        client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
        other = client.get(BASE + ODDS, params={"regions": "us", "apiKey": SECRET})
        assert route.call_count == 2
        assert _info(other).cache == "miss"


def test_empty_answer_costs_nothing(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller
) -> None:
    """An out-of-season [] with x-requests-last 0 costs 0 and leaves remaining as reported."""
    route = router.get(host=HOST, path=ODDS).mock(
        return_value=samples.response(b"[]", used=10, remaining=490, last=0)
    )
    bare = router.get(host=HOST, path=f"/v4/sports/{SPORT}/participants").mock(
        return_value=httpx.Response(200, json={"data": []})
    )
    with _client(tmp_path, router) as client:
        response = client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
        assert route.call_count == 1
        assert response.json() == []
        info = _info(response)
        assert info.cache == "miss"
        assert info.cost == 0
        assert info.remaining == 490
        assert info.ttl == 900
        # A later answer with no quota headers shows the ledger still holds 490 minus its cost.
        later = client.get(BASE + f"/v4/sports/{SPORT}/participants", params={"apiKey": SECRET})
        assert bare.call_count == 1
        assert _info(later).cost == 1
        assert _info(later).remaining == 489


def test_empty_answer_without_headers_costs_nothing(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller
) -> None:
    """A [] with no quota headers at all costs 0, not the estimate, in the ledger too."""
    router.get(host=HOST, path=ODDS).mock(
        return_value=samples.response(b"[]", used=10, remaining=490, last=0)
    )
    route = router.get(host=HOST, path=f"/v4/sports/{SPORT}/events/abc/odds").mock(
        return_value=httpx.Response(200, content=b"[]")
    )
    with _client(tmp_path, router) as client:
        client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
        response = client.get(
            BASE + f"/v4/sports/{SPORT}/events/abc/odds", params={**QUERY, "apiKey": SECRET}
        )
        assert route.call_count == 1
        info = _info(response)
        assert info.cost == 0
        assert info.remaining == 490


def test_unreadable_odds_fall_back_to_default_ttl(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller
) -> None:
    """When the freshness rule cannot read a 200 body, the stored answer gets default_ttl 60."""
    router.get(host=HOST, path=ODDS).mock(
        return_value=samples.response(b'{"unexpected": true}', used=10, remaining=490, last=2)
    )
    with _client(tmp_path, router) as client:
        response = client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
        assert _info(response).ttl == 60
        assert response.headers["cache-control"] == "max-age=60"


def test_out_of_credits_raises_then_refuses_locally(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller
) -> None:
    """401 OUT_OF_USAGE_CREDITS raises; then paid calls are refused locally, free ones go on."""
    odds = router.get(host=HOST, path=ODDS).mock(
        return_value=samples.error(401, "OUT_OF_USAGE_CREDITS", "Usage quota has been reached.")
    )
    scores = router.get(host=HOST, path=SCORES).mock(
        return_value=samples.response(b"[]", used=500, remaining=0, last=1)
    )
    sports = router.get(host=HOST, path="/v4/sports").mock(
        return_value=samples.response(samples.sports(), used=500, remaining=0, last=0)
    )
    with _client(tmp_path, router) as client:
        with pytest.raises(quotaflow.QuotaExhausted) as raised:
            client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
        assert odds.call_count == 1
        assert raised.value.profile == "theoddsapi"
        assert raised.value.remaining == 0

        with pytest.raises(quotaflow.QuotaExhausted) as refused:
            client.get(BASE + SCORES, params={"apiKey": SECRET})
        assert scores.call_count == 0
        assert refused.value.cost == 1

        free = client.get(BASE + "/v4/sports", params={"apiKey": SECRET})
        assert sports.call_count == 1
        assert free.status_code == 200
        assert free.content == samples.sports()
        info = _info(free)
        assert info.cost == 0
        assert info.cache == "miss"
        assert info.remaining == 0


def test_invalid_key_is_passed_through(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller
) -> None:
    """A 401 INVALID_KEY is the caller's answer, not quota exhaustion, and is not stored."""
    route = router.get(host=HOST, path=ODDS).mock(
        return_value=samples.error(401, "INVALID_KEY", "API key is not valid.")
    )
    with _client(tmp_path, router) as client:
        first = client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
        assert first.status_code == 401
        assert first.json()["error_code"] == "INVALID_KEY"
        second = client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
        assert second.status_code == 401
        assert route.call_count == 2


def test_stale_answer_when_credits_run_out(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """Past its ttl, a stored /odds answer stands in, marked stale, when the API says no credits."""
    body = _odds_body(start, 2 * HOUR)
    route = router.get(host=HOST, path=ODDS)
    route.side_effect = [
        samples.response(body, used=42, remaining=458, last=2),
        samples.error(401, "OUT_OF_USAGE_CREDITS", "Usage quota has been reached."),
    ]
    with _client(tmp_path, router) as client:
        first = client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
        assert _info(first).ttl == 120

        traveller.shift(121)
        stale = client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
        assert route.call_count == 2
        assert stale.status_code == 200
        assert stale.content == body
        assert stale.headers["age"] == "121"
        assert stale.headers["x-requests-remaining"] == "458"
        info = _info(stale)
        assert info.cache == "stale"
        assert info.stale_reason == "quota"
        assert info.age == 121
        assert info.ttl == 120
        assert info.profile == "theoddsapi"

        # quotaflow itself now refuses the paid call, and the stored answer stands in again.
        traveller.shift(60)
        again = client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
        assert route.call_count == 2
        assert again.content == body
        assert again.headers["age"] == "181"
        assert _info(again).cache == "stale"
        assert _info(again).stale_reason == "quota"


def test_too_old_to_stand_in(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """Beyond max_stale (a day past its ttl) the stored answer no longer stands in."""
    route = router.get(host=HOST, path=ODDS)
    route.side_effect = [
        samples.response(_odds_body(start, 2 * HOUR), used=42, remaining=458, last=2),
        samples.error(401, "OUT_OF_USAGE_CREDITS", "Usage quota has been reached."),
    ]
    with _client(tmp_path, router) as client:
        client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
        traveller.shift(120 + PROFILE.max_stale + 1)
        with pytest.raises(quotaflow.QuotaExhausted):
            client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
        assert route.call_count == 2


@pytest.mark.parametrize("host", ["api.the-odds-api.com", "ipv6-api.the-odds-api.com"])
def test_entry_point_discovery(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, host: str
) -> None:
    """With plugins=True, the installed entry point routes the API's hosts to "theoddsapi"."""
    found = {ep.name: ep for ep in entry_points(group="quotaflow.plugins")}
    assert found["theoddsapi"].load() is PLUGIN
    assert PLUGIN.profiles == (PROFILE,)
    route = router.get(host=host, path="/v4/sports").mock(
        return_value=samples.response(samples.sports(), used=7, remaining=493, last=0)
    )
    other = router.get(host="example.com").mock(return_value=httpx.Response(200, json=[]))
    client = quotaflow.make_client(
        plugins=True, state_dir=tmp_path, transport=httpx.MockTransport(router.handler)
    )
    with client:
        response = client.get(f"https://{host}/v4/sports", params={"apiKey": SECRET})
        assert route.call_count == 1
        info = _info(response)
        assert info.profile == "theoddsapi"
        assert info.ttl == 21600
        assert info.remaining == 493
        unrelated = client.get("https://example.com/v4/sports")
        assert other.call_count == 1
        assert _info(unrelated).profile == "default"


@pytest.mark.anyio
async def test_async_odds_miss_then_hit(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """The async client: miss then free hit, the key sent upstream but never stored."""
    body = _odds_body(start, 30 * 60)
    route = router.get(host=HOST, path=ODDS).mock(
        return_value=samples.response(body, used=42, remaining=458, last=2)
    )
    client = quotaflow.make_async_client(
        profiles=[PROFILE],
        plugins=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
    )
    async with client:
        first = await client.get(BASE + ODDS, params=[("apiKey", SECRET), *QUERY.items()])
        assert route.call_count == 1
        assert route.calls.last.request.url.params["apiKey"] == SECRET
        assert first.content == body
        info = _info(first)
        assert info.profile == "theoddsapi"
        assert info.cache == "miss"
        assert info.cost == 2
        assert info.remaining == 458
        assert info.ttl == 60  # kick-off in 30 minutes

        traveller.shift(59)
        second = await client.get(
            BASE + ODDS, params=[*reversed(QUERY.items()), ("apiKey", SECRET)]
        )
        assert route.call_count == 1
        assert second.content == body
        info = _info(second)
        assert info.cache == "hit"
        assert info.cost == 0
        assert info.remaining == 458
        assert info.ttl == 60

        for path, content in _stored_bytes(tmp_path).items():
            assert SECRET.encode() not in content, path


@pytest.mark.anyio
async def test_async_stale_answer_when_credits_run_out(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """The async client also serves the stored answer, marked stale, on OUT_OF_USAGE_CREDITS."""
    body = _odds_body(start, 2 * HOUR)
    route = router.get(host=HOST, path=ODDS)
    route.side_effect = [
        samples.response(body, used=42, remaining=458, last=2),
        samples.error(401, "OUT_OF_USAGE_CREDITS", "Usage quota has been reached."),
    ]
    client = quotaflow.make_async_client(
        profiles=[PROFILE],
        plugins=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
    )
    async with client:
        await client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
        traveller.shift(200)
        stale = await client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
        assert route.call_count == 2
        assert stale.status_code == 200
        assert stale.json() == json.loads(body)
        assert stale.headers["age"] == "200"
        info = _info(stale)
        assert info.cache == "stale"
        assert info.stale_reason == "quota"
        assert info.age == 200


def test_error_in_a_200_never_replaces_the_good_answer(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """Past its ttl, a 200 carrying the API's error object is not stored: the last good
    answer stands in for it, and is still there for the next request."""
    body = _odds_body(start, 2 * HOUR)
    broken = samples.error(200, "INTERNAL_ERROR", "Something went wrong.")
    route = router.get(host=HOST, path=ODDS)
    route.side_effect = [
        samples.response(body, used=42, remaining=458, last=2),
        broken,
        broken,
    ]
    with _client(tmp_path, router) as client:
        client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
        traveller.shift(121)

        during = client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
        traveller.shift(10)
        after = client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})

        assert route.call_count == 3
        assert during.content == after.content == body
        assert _info(during).cache == _info(after).cache == "stale"
        assert _info(during).stale_reason == "error_body"
        assert b"Something went wrong" not in b"".join(_stored_bytes(tmp_path).values())


def test_a_lost_ledger_is_synced_by_the_free_sports_probe(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """state.db corrupted: before spending on a guess, /v4/sports (free, with the quota
    headers) is asked once, with the apiKey only; the ledger then counts from it."""
    odds = router.get(host=HOST, path=ODDS).mock(
        return_value=samples.response(_odds_body(start, 2 * HOUR), used=10, remaining=490, last=2)
    )
    sports = router.get(host=HOST, path="/v4/sports").mock(
        return_value=samples.response(b"[]", used=300, remaining=200, last=0)
    )
    with _client(tmp_path, router) as client:
        client.get(BASE + ODDS, params={**QUERY, "apiKey": SECRET})
    (tmp_path / "state.db").write_bytes(b"\x00garbage" * 1024)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"state.db{suffix}").unlink(missing_ok=True)
    odds.mock(return_value=httpx.Response(200, content=_odds_body(start, 2 * HOUR)))

    with _client(tmp_path, router) as client:
        first = client.get(BASE + ODDS, params={"regions": "eu", "apiKey": SECRET})
        second = client.get(BASE + ODDS, params={"regions": "uk", "apiKey": SECRET})

    assert sports.call_count == 1
    assert sports.calls[0].request.url.params == httpx.QueryParams({"apiKey": SECRET})
    assert odds.call_count == 3
    assert _info(first).remaining == 200 - _info(first).cost
    assert _info(second).remaining == 200 - _info(first).cost - _info(second).cost
