"""RateLimitHeaders and profile_for: reading the quota, and through quotaflow's stack."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import respx
import time_machine

import quotaflow
from quotaflow import ConfigError, QuotaReading
from quotaflow_ratelimit_headers import FixedTtl, RateLimitHeaders, profile_for

HOST = "api.example.test"
URL = f"https://{HOST}/v1/items"


def _read(period: str = "day", **headers: str) -> QuotaReading:
    names = [(key.replace("_", "-"), value) for key, value in headers.items()]
    return RateLimitHeaders(period)(httpx.Response(200, headers=names))  # type: ignore[arg-type]


def test_ietf_policy_and_remaining() -> None:
    """The daily policy's q is the limit; the RateLimit member of that name, the remaining."""
    reading = _read(
        RateLimit_Policy='"burst";q=100;w=60, "daily";q=1000;w=86400',
        RateLimit='"burst";r=99;t=5, "daily";r=50;t=30',
    )
    assert reading == QuotaReading(remaining=50, limit=1000)


def test_monthly_period_picks_the_monthly_policy() -> None:
    """With period="month" the 30-day policy is the quota, not the daily one."""
    policy = '"daily";q=1000;w=86400, "monthly";q=20000;w=2592000'
    ratelimit = '"daily";r=10;t=300, "monthly";r=15000;t=900000'
    assert _read("day", RateLimit_Policy=policy, RateLimit=ratelimit) == QuotaReading(
        10, limit=1000
    )
    assert _read("month", RateLimit_Policy=policy, RateLimit=ratelimit) == QuotaReading(
        15000, limit=20000
    )


def test_no_policy_of_the_period_is_no_quota() -> None:
    """Policies of a second and an hour are short windows, never the day's quota."""
    reading = _read(
        RateLimit_Policy='"second";q=10;w=1, "hour";q=500;w=3600',
        RateLimit='"second";r=9, "hour";r=321',
    )
    assert reading == QuotaReading()


@pytest.mark.parametrize(
    "headers",
    [
        {"RateLimit_Policy": '"default";q=5;w=30', "RateLimit": '"default";r=1;t=20'},
        {"RateLimit_Policy": "60;w=60", "RateLimit": "limit=60, remaining=11, reset=9"},
        {"X_RateLimit_Limit": "60", "X_RateLimit_Remaining": "11", "X_RateLimit_Reset": "30"},
        {"X_RateLimit_Limit": "60, 60;w=60", "X_RateLimit_Remaining": "11"},
        {"RateLimit_Limit": "60", "RateLimit_Remaining": "11"},
        {"RateLimit": '"burst";r=0;t=1, "daily";r=420;t=40000'},
    ],
)
def test_a_short_window_is_never_the_quota(headers: dict[str, str]) -> None:
    """A window shorter than the period, or one that states no window at all, says
    nothing of the quota (issue 11: request 48 of 60/min refused until midnight)."""
    assert _read("day", **headers) == QuotaReading()
    assert _read("month", **headers) == QuotaReading()


def test_windowless_quota_reads_fields_that_state_no_window() -> None:
    """windowless="quota": the API documents its un-windowed fields as the quota."""
    reader = RateLimitHeaders("day", windowless="quota")

    def read(**headers: str) -> QuotaReading:
        names = [(key.replace("_", "-"), value) for key, value in headers.items()]
        return reader(httpx.Response(200, headers=names))

    assert read(RateLimit='"burst";r=0;t=1, "daily";r=420;t=40000') == QuotaReading(420)
    assert read(RateLimit_Limit="100", RateLimit_Remaining="42") == QuotaReading(42, limit=100)
    assert read(X_RateLimit_Remaining="3") == QuotaReading(remaining=3)
    # A stated window still decides: a minute is not a day.
    assert read(X_RateLimit_Limit="60, 60;w=60", X_RateLimit_Remaining="11") == QuotaReading()
    # A policy still decides too.
    assert read(RateLimit_Policy='"m";q=60;w=60', RateLimit='"m";r=1') == QuotaReading()


def test_fields_stating_the_period_are_the_quota() -> None:
    """A limit field whose window fits the period is read, whatever the family."""
    assert _read(X_RateLimit_Limit="5000, 5000;w=86400", X_RateLimit_Remaining="4999") == (
        QuotaReading(4999, limit=5000)
    )
    assert _read(RateLimit_Limit="100, 100;w=86400", RateLimit_Remaining="42") == QuotaReading(
        42, limit=100
    )
    assert _read("month", X_RateLimit_Limit="9;w=2592000", X_RateLimit_Remaining="3") == (
        QuotaReading(3, limit=9)
    )


def test_the_most_standard_family_wins() -> None:
    """IETF fields win over the others; garbage in one family falls through to the next."""
    daily = '"d";q=10;w=86400'
    assert _read(RateLimit_Policy=daily, RateLimit='"d";r=1', X_RateLimit_Remaining="99") == (
        QuotaReading(1, limit=10)
    )
    assert _read(RateLimit="garbage", X_RateLimit_Limit="9;w=86400", X_RateLimit_Remaining="4") == (
        QuotaReading(4, limit=9)
    )
    assert _read(X_RateLimit_Remaining="-1", X_RateLimit_Limit="x") == QuotaReading()
    assert _read() == QuotaReading()


def test_reader_period_is_validated() -> None:
    """A period other than day or month is refused."""
    with pytest.raises(ValueError, match="period"):
        RateLimitHeaders("week")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="windowless"):
        RateLimitHeaders("day", windowless="maybe")  # type: ignore[arg-type]


def test_profile_for_builds_a_profile() -> None:
    """Every argument lands in the ApiProfile."""
    profile = profile_for(
        "github",
        "api.github.com",
        quota=5000,
        quota_period="month",
        reset_day=15,
        rate=10,
        per=2.0,
        burst=3,
        ttl=60,
        max_stale=3600,
        secret_params=("token",),
        secret_headers=("X-Token",),
        path_prefix="/v3",
    )
    assert profile.name == "github"
    assert profile.hosts == ("api.github.com",)
    assert profile.path_prefix == "/v3"
    assert profile.quota == quotaflow.Quota(5000, period="month", reset_day=15)
    assert profile.rates == (quotaflow.Rate(10, per=2.0, burst=3),)
    assert profile.freshness == FixedTtl(60)
    assert profile.default_ttl == 60
    assert profile.max_stale == 3600
    assert profile.secret_params == ("token",)
    assert profile.secret_headers == ("x-token",)
    assert profile.read_quota == RateLimitHeaders("month")


def test_profile_for_minimal() -> None:
    """Only name and hosts: no quota, no rate, the HTTP headers decide freshness."""
    profile = profile_for("plain", ["a.test", "*.b.test"])
    assert profile.hosts == ("a.test", "*.b.test")
    assert profile.quota is None
    assert profile.rates == ()
    assert profile.freshness is None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"quota_period": "week"}, "quota_period"),
        ({"quota": 0}, "limit"),
        ({"rate": 1, "per": 0}, "per"),
        ({"ttl": -1}, "ttl"),
        ({"ttl": float("nan")}, "ttl"),
        ({"max_stale": -5}, "max_stale"),
    ],
)
def test_profile_for_refuses_bad_values(kwargs: dict[str, object], field: str) -> None:
    """Bad arguments raise ConfigError naming the field."""
    with pytest.raises(ConfigError, match=field):
        profile_for("x", "x.test", **kwargs)  # type: ignore[arg-type]


def test_through_quotaflow_the_headers_sync_the_quota(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller
) -> None:
    """RateLimit fields sync the ledger: remaining read, q sets the quota's size."""
    route = router.get(host=HOST).mock(
        return_value=httpx.Response(
            200,
            json={"items": []},
            headers={"RateLimit-Policy": '"daily";q=1000;w=86400', "RateLimit": '"daily";r=400'},
        )
    )
    profile = profile_for("example", HOST, quota=100, ttl=30, max_stale=600)
    with quotaflow.make_client(
        profiles=[profile],
        plugins=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
        clock=quotaflow.Clock(sleep=traveller.shift),
    ) as client:
        first = client.get(URL)
        info = first.extensions["quotaflow"]
        assert (info.profile, info.remaining, info.ttl) == ("example", 400, 30)
        assert _hit(client.get(URL))
        # 400 of 1000 is inside LOW's 50 % reserve; of the assumed 100 it would not be.
        with pytest.raises(quotaflow.QuotaExhausted):
            client.get(URL + "/other", extensions={"priority": "low"})
    assert route.call_count == 1


def _hit(response: httpx.Response) -> bool:
    return bool(response.extensions["quotaflow"].cache == "hit")
