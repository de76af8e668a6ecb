"""quotaflow.plan(): what a batch would cost and whether it fits, sending nothing."""

from __future__ import annotations

import httpx
import pytest

import quotaflow
from quotaflow import Quota
from quotaflow._cli import main

from .conftest import BASE, api_profile


def profile():
    return api_profile(quota=Quota(20), cost=lambda request: 3)


def test_plan_tells_cache_from_upstream(stack, router, traveller) -> None:
    """A fresh entry is free; others cost the estimate; nothing goes upstream."""
    route = router.get(url__startswith=BASE).respond(200, json={})
    client = stack(profiles=[profile()])
    client.get(f"{BASE}/fresh")
    client.get(f"{BASE}/old")
    traveller.shift(30)
    client.get(f"{BASE}/fresh")  # hot now
    traveller.shift(40)  # /old is 70 s old: stale; /fresh was fetched 70 s ago too
    client.get(f"{BASE}/fresh")
    calls = route.call_count

    result = (
        quotaflow.plan(client.client, [f"{BASE}/fresh", f"{BASE}/old", f"{BASE}/new?key=SECRET"])
        if client.mode == "sync"
        else client._portal.call(
            quotaflow.aplan,
            client.client,
            [f"{BASE}/fresh", f"{BASE}/old", f"{BASE}/new?key=SECRET"],
        )
    )

    assert route.call_count == calls
    assert [(r.url, r.fresh, r.cost) for r in result.requests] == [
        (f"{BASE}/fresh", True, 0),
        (f"{BASE}/old", False, 3),
        (f"{BASE}/new", False, 3),
    ]
    assert (result.upstream, result.cost) == (2, 6)
    # The keyed request is another quota account (each credential is its own quota).
    (account,) = set(result.remaining) - {"api"}
    assert account.startswith("api#")
    assert "SECRET" not in account
    assert result.remaining == {"api": 11, account: None}
    assert result.fits  # 11 - 3 = 8 >= 20% of 20, and the new account is whole


def test_plan_respects_the_priority_reserve(stack, router) -> None:
    """The same batch fits at CRITICAL but not at LOW (which keeps half the quota)."""
    router.get(url__startswith=BASE).respond(200, json={})
    client = stack(profiles=[profile()])
    urls = [f"{BASE}/{n}" for n in range(4)]  # 12 of 20: LOW must leave 10

    if client.mode == "sync":
        low = quotaflow.plan(client.client, urls, priority="low")
        critical = quotaflow.plan(client.client, urls, priority="critical")
    else:
        low = client._portal.call(lambda: quotaflow.aplan(client.client, urls, priority="low"))
        critical = client._portal.call(
            lambda: quotaflow.aplan(client.client, urls, priority="critical")
        )

    assert (low.cost, low.fits, critical.fits) == (12, False, True)


def test_plan_needs_a_quotaflow_client() -> None:
    """A plain httpx client cannot be planned for."""
    with httpx.Client() as plain, pytest.raises(TypeError, match="make_client"):
        quotaflow.plan(plain, ["https://example.org"])


def test_plan_command(tmp_path, capsys) -> None:
    """'quotaflow plan FILE' lists each URL's fate and exits 1 when the batch does not fit."""
    urls = tmp_path / "urls.txt"
    urls.write_text(
        "# the morning slate\n"
        "https://api.the-odds-api.com/v4/sports\n"
        "https://api.the-odds-api.com/v4/sports/americanfootball_nfl/odds?regions=us,uk"
        "&markets=h2h,spreads,totals&apiKey=SECRET\n"
    )

    fits = main(["plan", str(urls), "--state-dir", str(tmp_path / "s")])
    out = capsys.readouterr().out
    too_much = main(["plan", str(urls), "--state-dir", str(tmp_path / "s"), "--priority", "low"])

    assert fits == 0
    assert "upstream, cost 6" in out
    assert "SECRET" not in out
    assert "2 requests: 2 upstream costing 6" in out
    assert too_much == 0  # 500 - 6 still leaves LOW's half


def test_plan_command_refuses_bad_input(tmp_path, capsys) -> None:
    """A missing file or an unknown priority is a clear error, exit 2."""
    assert main(["plan", str(tmp_path / "missing.txt")]) == 2
    urls = tmp_path / "urls.txt"
    urls.write_text("https://example.org\n")
    assert main(["plan", str(urls), "--priority", "urgent", "--state-dir", str(tmp_path)]) == 2
    assert "priority" in capsys.readouterr().err


def test_plan_command_reads_redis(tmp_path, prefix, monkeypatch, capsys) -> None:
    """--redis-url/--redis-prefix plan against the cache and quota the clients share there;
    the local state directory alone knows nothing of them."""
    from .stub_server import REDIS_URL

    monkeypatch.delenv("QUOTAFLOW_REDIS_URL", raising=False)
    sports = "https://api.the-odds-api.com/v4/sports"
    odds = f"{sports}/americanfootball_nfl/odds?regions=us,uk&markets=h2h,spreads,totals"

    def api(request: httpx.Request) -> httpx.Response:
        # /v4/sports costs nothing and still reports the balance: 3 credits left.
        headers = {"x-requests-remaining": "3", "x-requests-used": "497", "x-requests-last": "0"}
        return httpx.Response(200, json=[], headers=headers)

    with quotaflow.make_client(
        state_dir=tmp_path / "writer",
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        transport=httpx.MockTransport(api),
    ) as client:
        client.get(sports)
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{sports}\n{odds}\n")
    shared = ["--redis-url", REDIS_URL, "--redis-prefix", prefix]

    on_redis = main(["plan", str(urls), "--state-dir", str(tmp_path / "reader"), *shared])
    out = capsys.readouterr().out
    local = main(["plan", str(urls), "--state-dir", str(tmp_path / "reader")])
    local_out = capsys.readouterr().out

    assert on_redis == 1  # 6 credits asked, 3 left
    assert f"cache                  {sports}" in out
    assert "remaining theoddsapi 3" in out
    assert "does NOT fit" in out
    assert local == 0
    assert f"upstream, cost 0       {sports}" in local_out
