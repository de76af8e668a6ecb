"""Issue guarantee: with apiKey, api_key, Authorization and x-apisports-key in use, no
secret value appears in any state file, Redis key or value, DEBUG log record,
exception message, or ResponseInfo. Scanned byte for byte."""

from __future__ import annotations

import logging

import httpx
import pytest
import redis
import respx

import quotaflow
from quotaflow import ApiProfile, Quota

from .conftest import files_under, info
from .stub_server import REDIS_URL, redis_prefix, redis_unavailable

SECRETS = {
    "apiKey": "odds-key-5f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "api_key": "sample-key-0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    "authorization": "Bearer bearer-token-ffeeddccbbaa99887766554433",
    "x-apisports-key": "apisports-key-1234567890abcdef1234567890",
}
ODDS = "https://api.the-odds-api.com/v4/sports/basketball_nba/odds"
SPORTS = "https://v3.football.api-sports.io/fixtures"


def profiles() -> list[ApiProfile]:
    from quotaflow_theoddsapi import PROFILE

    football = ApiProfile(
        name="football",
        hosts=("v3.football.api-sports.io",),
        quota=Quota(100, period="day"),
        secret_headers=("x-apisports-key",),
        freshness=lambda request, response, now: 60,
        max_stale=3600,
        retries=1,
    )
    return [PROFILE, football]


def traffic(client, router: respx.Router, traveller, infos: list) -> list[BaseException]:
    """Hits, misses, a retry, a stale answer, a refusal and errors: every path once."""
    odds = router.get(url__startswith=ODDS).respond(
        200, json=[], headers={"x-requests-remaining": "400", "x-requests-used": "100"}
    )
    football = router.get(url__startswith=SPORTS).respond(200, json={"response": []})
    params = {"apiKey": SECRETS["apiKey"], "api_key": SECRETS["api_key"], "regions": "us"}
    headers = {
        "x-apisports-key": SECRETS["x-apisports-key"],
        "authorization": SECRETS["authorization"],
    }
    errors: list[BaseException] = []
    infos.append(info(client.get(ODDS, params=params)))
    infos.append(info(client.get(ODDS, params=params)))
    infos.append(info(client.get(SPORTS, headers=headers)))
    traveller.shift(3600)
    football.mock(side_effect=httpx.ConnectError("down"))
    infos.append(info(client.get(SPORTS, headers=headers)))  # retried, then stale
    odds.respond(
        401, json={"message": "Usage quota has been reached", "error_code": "OUT_OF_USAGE_CREDITS"}
    )
    for request in (
        lambda: client.get(ODDS, params={**params, "markets": "totals"}),
        lambda: client.get(f"{ODDS}x", params=params),
    ):
        try:
            request()
        except quotaflow.QuotaflowError as exc:
            errors.append(exc)
    return errors


def assert_clean(blob: bytes | str, where: str) -> None:
    data = blob.encode() if isinstance(blob, str) else blob
    for name, secret in SECRETS.items():
        assert secret.encode() not in data, f"{name} found in {where}"
        token = secret.split()[-1].encode()
        assert token not in data, f"{name} token found in {where}"


def test_sqlite_state_logs_errors_and_info(stack, router, traveller, tmp_path, caplog) -> None:
    """The SQLite files, every log record at DEBUG, messages and infos: no secret."""
    caplog.set_level(logging.DEBUG)
    client = stack(profiles=profiles())
    infos: list[quotaflow.ResponseInfo] = []
    errors = traffic(client, router, traveller, infos)
    client.close()

    assert errors, "the traffic should have met a refusal"
    assert [i.cache for i in infos] == ["miss", "hit", "miss", "stale"]
    for path, content in files_under(tmp_path / "state").items():
        assert_clean(content, str(path))
    for record in caplog.records:
        assert_clean(record.getMessage(), f"log record {record.name}")
        assert_clean(repr(record.args), f"log args {record.name}")
    for error in errors:
        assert_clean(str(error) + repr(error.args), f"{type(error).__name__}")
    assert_clean(repr(infos), "ResponseInfo")
    sent = [str(call.request.url) + str(call.request.headers) for call in router.calls]
    assert any(SECRETS["apiKey"] in line for line in sent)  # they did reach upstream
    assert any(SECRETS["x-apisports-key"] in line for line in sent)


def test_redis_keys_and_values(stack, router, traveller) -> None:
    """Every Redis key and value under the prefix: no secret."""
    try:
        raw = redis.Redis.from_url(REDIS_URL)
        raw.ping()
    except redis.ConnectionError:
        redis_unavailable()
    with redis_prefix() as prefix:
        client = stack(profiles=profiles(), redis_url=REDIS_URL, redis_prefix=prefix)
        traffic(client, router, traveller, [])
        client.close()
        keys = list(raw.scan_iter(match=f"{prefix}*"))
        assert keys
        for key in keys:
            assert_clean(key, "a Redis key")
            assert_clean(raw.dump(key) or b"", f"Redis value of {key!r}")


def test_response_infos_carry_no_secret(stack, router) -> None:
    """ResponseInfo knows the profile and numbers, never the request."""
    router.get(url__startswith=ODDS).respond(200, json=[])
    client = stack(profiles=profiles())

    response = client.get(ODDS, params={"apiKey": SECRETS["apiKey"]})

    assert_clean(repr(info(response)), "ResponseInfo")
    with pytest.raises(AttributeError):
        info(response).url  # noqa: B018 - it has no such field
