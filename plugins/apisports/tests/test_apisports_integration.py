"""The API-Sports profile through quotaflow's whole stack, against a respx mock."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import respx
import time_machine

import quotaflow
from quotaflow_apisports import HOST, PROFILE, samples

BASE = f"https://{HOST}"
FIXTURES = "/fixtures"
KEY = "SECRET-a1b2c3d4e5f60718293a4b5c6d7e8f90"
HOUR = 3600


def _client(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller
) -> httpx.Client:
    # Time stands still: the limiter's sleeps move it on instead.
    return quotaflow.make_client(
        profiles=[PROFILE],
        plugins=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
        headers={"x-apisports-key": KEY},
        clock=quotaflow.Clock(sleep=traveller.shift),
    )


def _info(response: httpx.Response) -> quotaflow.ResponseInfo:
    info = response.extensions["quotaflow"]
    assert isinstance(info, quotaflow.ResponseInfo)
    return info


def _good(start: float, remaining: int) -> httpx.Response:
    body = samples.envelope(FIXTURES, [samples.fixture(1, start + 2 * HOUR)])
    return samples.response(body, remaining=remaining)


def test_error_in_a_200_is_never_cached(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller
) -> None:
    """An errors-in-200 body reaches the caller but is not stored: the same GET goes upstream."""
    route = router.get(host=HOST, path=FIXTURES).mock(
        return_value=samples.error_response("fixtures", {"token": "Error/Missing application key."})
    )
    with _client(tmp_path, router, traveller) as client:
        first = client.get(BASE + FIXTURES, params={"date": "2025-09-04"})
        second = client.get(BASE + FIXTURES, params={"date": "2025-09-04"})
    assert route.call_count == 2
    assert first.status_code == second.status_code == 200
    assert first.json()["errors"] == {"token": "Error/Missing application key."}
    assert _info(first).cache == _info(second).cache == "miss"


def test_error_in_a_200_is_answered_stale(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """With a good answer stored, an error body is replaced by it, marked stale (error_body)."""
    good = _good(start, remaining=90)
    route = router.get(host=HOST, path=FIXTURES)
    route.side_effect = [
        good,
        samples.error_response("fixtures", {"rateLimit": "Too many requests."}, remaining=89),
    ]
    with _client(tmp_path, router, traveller) as client:
        first = client.get(BASE + FIXTURES, params={"date": "2025-09-04"})
        assert _info(first).ttl == 300
        traveller.shift(301)
        again = client.get(BASE + FIXTURES, params={"date": "2025-09-04"})
    assert route.call_count == 2
    assert again.status_code == 200
    assert again.content == good.content
    info = _info(again)
    assert info.cache == "stale"
    assert info.stale_reason == "error_body"
    assert info.age == pytest.approx(301)


def test_daily_limit_in_a_200_raises_then_refuses_locally(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller
) -> None:
    """The "request limit for the day" error is QuotaExhausted; later calls stay local."""
    route = router.get(host=HOST, path=FIXTURES).mock(
        return_value=samples.error_response(
            "fixtures", {"requests": samples.DAILY_LIMIT_MESSAGE}, remaining=0
        )
    )
    with _client(tmp_path, router, traveller) as client:
        with pytest.raises(quotaflow.QuotaExhausted):
            client.get(BASE + FIXTURES, params={"live": "all"})
        with pytest.raises(quotaflow.QuotaExhausted):
            client.get(BASE + FIXTURES, params={"date": "2025-09-05"})
    assert route.call_count == 1


def test_quota_headers_sync_the_ledger(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """remaining is read from the headers, and the limit header sets the quota's size.

    With the plan's 1000 a day known, 400 left is inside LOW's 50 % reserve (500):
    a LOW request is refused. Against the assumed 100 it would have been let through.
    """
    router.get(host=HOST, path=FIXTURES).mock(
        return_value=samples.response(samples.envelope(FIXTURES, []), remaining=400, limit=1000)
    )
    teams = router.get(host=HOST, path="/teams").mock(
        return_value=samples.response(samples.envelope("teams", []))
    )
    with _client(tmp_path, router, traveller) as client:
        first = client.get(BASE + FIXTURES, params={"date": "2025-09-04"})
        assert _info(first).remaining == 400

        with pytest.raises(quotaflow.QuotaExhausted) as refused:
            client.get(BASE + "/teams", params={"league": "39"}, extensions={"priority": "low"})
        assert refused.value.remaining == 400
        assert teams.call_count == 0

        normal = client.get(BASE + "/teams", params={"league": "39"})
        assert teams.call_count == 1
        assert _info(normal).remaining == 399  # no headers: the ledger counts the call


def test_the_key_never_reaches_the_disk(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """x-apisports-key goes upstream, never into any file under state_dir."""
    route = router.get(host=HOST, path=FIXTURES).mock(return_value=_good(start, remaining=99))
    with _client(tmp_path, router, traveller) as client:
        client.get(BASE + FIXTURES, params={"date": "2025-09-04"})
        hit = client.get(BASE + FIXTURES, params={"date": "2025-09-04"})
        assert route.calls.last.request.headers["x-apisports-key"] == KEY
        assert _info(hit).cache == "hit"
        files = [path for path in tmp_path.rglob("*") if path.is_file()]
        assert any(b"date=2025-09-04" in path.read_bytes() for path in files)  # stored
        for path in files:
            assert KEY.encode() not in path.read_bytes(), path
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_another_key_shares_the_entry(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """Fixtures are the same for every key: the profile shares answers across keys
    (``shared_answers``), so the key header does not partition the cache."""
    route = router.get(host=HOST, path=FIXTURES).mock(return_value=_good(start, remaining=99))
    with _client(tmp_path, router, traveller) as client:
        client.get(BASE + FIXTURES, params={"date": "2025-09-04"})
        other = client.get(
            BASE + FIXTURES, params={"date": "2025-09-04"}, headers={"x-apisports-key": "other"}
        )
    assert route.call_count == 1
    assert _info(other).cache == "hit"


def test_live_fixtures_last_15_seconds(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """A fixture in play: stored for 15 s."""
    body = samples.envelope(FIXTURES, [samples.fixture(7, start - HOUR, "2H")])
    route = router.get(host=HOST, path=FIXTURES).mock(
        return_value=samples.response(body, remaining=50)
    )
    with _client(tmp_path, router, traveller) as client:
        assert _info(client.get(BASE + FIXTURES, params={"live": "all"})).ttl == 15
        traveller.shift(14)
        assert _info(client.get(BASE + FIXTURES, params={"live": "all"})).cache == "hit"
        traveller.shift(2)
        assert _info(client.get(BASE + FIXTURES, params={"live": "all"})).cache == "miss"
    assert route.call_count == 2


def test_the_account_status_is_never_shared_between_keys(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller
) -> None:
    """/status is the key's own account: each key gets its own answer."""
    route = router.get(host=HOST, path="/status").mock(
        side_effect=lambda request: httpx.Response(
            200,
            json={"errors": [], "response": {"account": request.headers["x-apisports-key"][-1]}},
        )
    )
    with _client(tmp_path, router, traveller) as client:
        first = client.get(BASE + "/status", headers={"x-apisports-key": "key-a"})
        second = client.get(BASE + "/status", headers={"x-apisports-key": "key-b"})
    assert (first.json()["response"], second.json()["response"]) == (
        {"account": "a"},
        {"account": "b"},
    )
    assert route.call_count == 2
