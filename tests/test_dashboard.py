"""quotaflow dashboard: the status view as a web page, checked in a real headless Chromium
and over plain HTTP against what read_status says for the same state."""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

import quotaflow
from quotaflow import ApiProfile, Quota, _cli_status, _dashboard
from quotaflow._cli import main
from quotaflow._status import ProfileStatus, circuit_text, pause_text

from .conftest import BASE, START, api_profile

URL = f"{BASE}/odds"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1500",
)
# Days with traffic in the state built below (today is START's day).
TRAFFIC_DAYS = ["2026-11-26", "2026-11-27", "2026-11-29"]
FIELDS = ("remaining", "used", "total", "hits", "misses", "revalidated", "stale", "refused")


def build_traffic(stack, router, traveller, tmp_path: Path) -> tuple[ApiProfile, Path]:
    """Three days of requests (none on the 28th); today ends at the 20% reserve."""
    route = router.get(url__startswith=URL).respond(200, json={}, headers={"x-cost": "2"})
    profile = api_profile(quota=Quota(16), cost=lambda request: 2)
    traveller.move_to(START - timedelta(days=3))
    client = stack(profiles=[profile])
    for path in ("a", "a", "a"):  # 26th: a miss and two hits
        client.get(f"{URL}/{path}")
    traveller.shift(86400)
    for path in ("b", "c", "b"):  # 27th: two misses and a hit
        client.get(f"{URL}/{path}")
    traveller.move_to(START)
    for path in ("d", "d", "d", "e"):  # today: two misses, two hits
        client.get(f"{URL}/{path}")
    traveller.shift(61)
    route.mock(side_effect=httpx.ConnectError("down"))
    client.get(f"{URL}/d")  # stale, and the last error
    route.mock(side_effect=None, return_value=httpx.Response(200, json={}))
    client.get(f"{URL}/f")  # a third miss leaves 4 of 16: the rest is the reserve
    with pytest.raises(quotaflow.QuotaExhausted):
        client.get(f"{URL}/g")
    client.close()  # the counters are written now
    return profile, tmp_path / "state"


def expected_fields(status: ProfileStatus) -> dict[str, str]:
    values: dict[str, Any] = {
        "remaining": status.remaining,
        "used": status.used,
        "total": status.total,
        "saved": status.today["saved"],
        "spent": status.today["spent"],
        "tokens": status.tokens,
        "circuit": status.circuit,
        "circuit_state": circuit_text(status),
        "paused": pause_text(status),
        "last_error": status.last_error and f"{status.last_error} at {status.last_error_at}",
        "resets_at": status.resets_at[:10] if status.resets_at else None,
        **{k: status.today[k] for k in ("hits", "misses", "revalidated", "stale", "refused")},
    }
    return {k: "-" if v is None else str(v) for k, v in values.items()}


@pytest.fixture
def traffic(stack, router, traveller, tmp_path) -> tuple[ApiProfile, Path]:
    return build_traffic(stack, router, traveller, tmp_path)


@pytest.fixture
def dashboard(traffic) -> Iterator[str]:
    profile, state = traffic
    server, thread = _dashboard.serve(state, "127.0.0.1", 0, profiles=[profile], refresh=0.5)
    try:
        yield _dashboard.url_of(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def get(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.headers["Content-Type"], response.read().decode()


class Page(HTMLParser):
    """data-field texts and chart marks per profile, from the served HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.profiles: dict[str, dict[str, Any]] = {}
        self._profile: dict[str, Any] | None = None
        self._field: str | None = None
        self._chart: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and a.get("data-profile"):
            self._profile = {"fields": {}, "charts": {}}
            self.profiles[a["data-profile"]] = self._profile
        elif self._profile is None:
            return
        elif a.get("data-field"):
            self._field = a["data-field"]
            self._profile["fields"][self._field] = ""
        elif tag == "svg" and a.get("data-chart"):
            self._chart = a["data-chart"]
            self._profile["charts"][self._chart] = []
        elif self._chart and a.get("data-day"):
            self._profile["charts"][self._chart].append((a["data-day"], a["data-value"]))

    def handle_data(self, data: str) -> None:
        if self._profile is not None and self._field:
            self._profile["fields"][self._field] += data

    def handle_endtag(self, tag: str) -> None:
        if self._field and tag in ("dd", "span"):
            self._field = None
        if tag == "svg":
            self._chart = None


def check_page(found: dict[str, Any], status: ProfileStatus) -> None:
    fields = {k: v.strip() for k, v in found["fields"].items()}
    assert {k: fields[k] for k in expected_fields(status)} == expected_fields(status)
    spent = found["charts"]["spent"]
    ratio = found["charts"]["hit-ratio"]
    answers = ("hits", "misses", "revalidated", "stale")
    days = [row for row in status.days if sum(row[k] for k in answers)]
    assert [day for day, _ in spent] == [row["day"] for row in status.days] == TRAFFIC_DAYS
    assert [int(value) for _, value in spent] == [row["spent"] for row in status.days]
    assert [day for day, _ in ratio] == [row["day"] for row in days]
    for (_, value), row in zip(ratio, days, strict=True):
        answered = sum(row[k] for k in answers)
        assert float(value) == pytest.approx(row["hits"] / answered, abs=1e-4)


def test_traffic_is_what_the_page_should_show(traffic) -> None:
    """The state the other tests read: read_status's own numbers for it."""
    profile, state = traffic
    statuses = _cli_status.collect(state, None, "quotaflow", [profile])
    (status,) = [s for s in statuses if s.profile == "api"]
    assert status.today == {
        "hits": 2,
        "misses": 3,
        "revalidated": 0,
        "stale": 1,
        "refused": 1,
        "saved": 4,
        "spent": 6,
    }
    assert (status.total, status.used, status.remaining) == (16, 12, 4)
    assert (status.last_error, status.last_error_at) == ("ConnectError", "2026-11-29T12:01:01Z")
    assert [(d["day"], d["spent"], d["hits"]) for d in status.days] == [
        ("2026-11-26", 2, 2),
        ("2026-11-27", 4, 1),
        ("2026-11-29", 6, 2),
    ]


def test_page_and_json_over_http(traffic, dashboard) -> None:
    """Without a browser: the HTML carries the numbers and charts, /status.json the data."""
    profile, state = traffic
    expected = _cli_status.collect(state, None, "quotaflow", [profile])
    kind, page = get(dashboard)
    json_kind, body = get(dashboard + "status.json")

    assert kind == "text/html; charset=utf-8"
    assert json_kind == "application/json; charset=utf-8"
    assert json.loads(body) == [s.as_dict() for s in expected]
    parser = Page()
    parser.feed(page)
    assert set(parser.profiles) == {s.profile for s in expected}
    (status,) = [s for s in expected if s.profile == "api"]
    check_page(parser.profiles["api"], status)
    assert 'data-now="2026-11-29"' in page  # today is the simulated one
    # Self-contained: nothing is loaded from another address.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<script src" not in page
    with pytest.raises(urllib.error.HTTPError) as missing:
        get(dashboard + "nothing-here")
    missing.value.close()
    assert missing.value.code == 404


def test_dashboard_command(tmp_path, capsys) -> None:
    """--help explains it; a state directory that is a file is a usage error, not a trace."""
    assert main(["dashboard", "--help"]) == 0
    assert "/status.json" in capsys.readouterr().out
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    assert main(["dashboard", "--state-dir", str(not_a_dir), "--port", "0"]) == 2
    assert "is not a directory" in capsys.readouterr().err


@pytest.fixture
def browser(tmp_path_factory) -> Iterator[Any]:
    """Headless Chromium through Debian's chromedriver; nothing is downloaded."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip install 'selenium>=4')")
    if missing:
        reason = f"the dashboard browser test needs {', '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(10)
    try:
        yield driver
    finally:
        driver.quit()


READ_PAGE = """
const out = {};
for (const section of document.querySelectorAll("section[data-profile]")) {
  const fields = {}, charts = {};
  for (const el of section.querySelectorAll("[data-field]"))
    fields[el.dataset.field] = el.textContent;
  for (const svg of section.querySelectorAll("svg[data-chart]")) {
    const box = svg.getBoundingClientRect();
    charts[svg.dataset.chart] = Array.from(svg.querySelectorAll("[data-day]"),
      (mark) => [mark.dataset.day, mark.dataset.value]);
    charts[svg.dataset.chart + ":size"] = [box.width, box.height];
  }
  out[section.dataset.profile] = {fields: fields, charts: charts};
}
return out;
"""


# One client mode is enough here: the browser is the slow part.
@pytest.mark.parametrize("stack", ["sync"], indirect=True)
def test_page_in_a_browser(browser, traffic, dashboard) -> None:
    """Chromium shows read_status's numbers and both charts, and refreshes them itself."""
    profile, state = traffic
    expected = _cli_status.collect(state, None, "quotaflow", [profile])
    browser.get(dashboard)
    # Read in one script: the page swaps its content in every half second.
    found = browser.execute_script(READ_PAGE)

    assert browser.title == "quotaflow dashboard"
    assert set(found) == {s.profile for s in expected}
    (status,) = [s for s in expected if s.profile == "api"]
    check_page(found["api"], status)
    for chart in ("spent", "hit-ratio"):
        width, height = found["api"]["charts"][f"{chart}:size"]
        assert width > 200, f"{chart} is not drawn"
        assert height > 50, f"{chart} is not drawn"
    bars = browser.execute_script(
        "return document.querySelectorAll('[data-profile=api] svg[data-chart=spent] rect').length"
    )
    assert bars == len(TRAFFIC_DAYS)
    # Today by hour and by priority, as the shared state counted them.
    hourly = browser.execute_script(
        "return Array.from(document.querySelectorAll("
        "'[data-profile=api] svg[data-chart=hourly] rect[data-hour]'),"
        " (r) => [r.dataset.hour, r.dataset.value])"
    )
    assert hourly == [[row["hour"][-2:], str(row["spent"])] for row in status.hours]
    assert hourly  # today's traffic has an hour
    priorities = browser.execute_script(
        "return Array.from(document.querySelectorAll('[data-profile=api] tr[data-priority]'),"
        " (r) => r.dataset.priority)"
    )
    assert priorities == list(status.by_priority)
    if shot := os.environ.get("QUOTAFLOW_DASHBOARD_SCREENSHOT"):
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1280, height + 300)
        browser.save_screenshot(shot)

    # The refresh script fetches the page again and swaps the numbers in: a marked
    # element is replaced by a fresh one with the same numbers.
    browser.execute_script("document.getElementById('profiles').dataset.old = '1'")
    # An idle profile the reader unfolded stays unfolded through the refresh.
    opened = browser.execute_script(
        "var d = document.querySelector('details[data-idle]'); d.open = true; return d.dataset.idle"
    )
    for _ in range(50):  # up to 5 s of real time (the test's clock stands still)
        time.sleep(0.1)
        if browser.execute_script("return !document.getElementById('profiles').dataset.old"):
            break
    else:
        pytest.fail("the page did not refresh itself")
    check_page(browser.execute_script(READ_PAGE)["api"], status)
    assert browser.execute_script(
        f"return document.querySelector('details[data-idle=\"{opened}\"]').open"
    )
    # The browser loaded nothing but the page and its own refreshes.
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
    )
    assert all(name.startswith(dashboard) for name in loaded), loaded
    assert json.loads(get(dashboard + "status.json")[1]) == [s.as_dict() for s in expected]


def test_quota_line_and_forecast(traffic) -> None:
    """The quota line counts back from what is left with each day's spending, starts at
    the period's start, ends now; the page draws it with the forecast to the reset."""
    profile, state = traffic
    statuses = _cli_status.collect(state, None, "quotaflow", [profile])
    (status,) = [s for s in statuses if s.profile == "api"]
    assert status.period_start == "2026-11-01T00:00:00Z"
    line = [(p["at"], p["remaining"]) for p in status.quota_line]
    # 2 spent on the 26th, 4 on the 27th, 6 today: 16 -> 14 -> 10 -> 10 -> 4 (now).
    assert line[0] == ("2026-11-01T00:00:00Z", 16)
    assert line[-4:] == [
        ("2026-11-27T00:00:00Z", 14),
        ("2026-11-28T00:00:00Z", 10),
        ("2026-11-29T00:00:00Z", 10),
        ("2026-11-29T12:01:01Z", 4),
    ]
    assert [units for _, units in line[:-4]] == [16] * 26
    page = _dashboard.render_page(statuses, START.timestamp() + 61)
    assert '<svg data-chart="quota"' in page
    forecast = re.search(r'class="forecast" data-at="([^"]+)" data-value="([^"]+)"', page)
    assert forecast is not None
    assert forecast.groups() == ("2026-12-01 00:00", str(status.forecast_at_reset))
    refused = re.findall(r'<rect class="bar today" data-day="([^"]+)" data-value="(\d+)"', page)
    assert ("2026-11-29", "1") in refused  # today's refusal, in the refused chart


def test_idle_profiles_are_collapsed(traffic) -> None:
    """Profiles without traffic, spending or anything in their gate come last, folded."""
    profile, state = traffic
    quiet = api_profile(name="quiet", hosts=("quiet.example",), quota=Quota(10))
    statuses = _cli_status.collect(state, None, "quotaflow", [profile, quiet])
    page = _dashboard.render_page(statuses, START.timestamp() + 61)
    parser = Page()
    parser.feed(page)
    assert {"api", "quiet"} <= set(parser.profiles)  # the idle one is still all there
    assert re.search(r'<details class="idle" data-idle="quiet">', page)
    assert 'data-idle="api"' not in page
    assert page.index('data-profile="api"') < page.index('data-idle="quiet"')


def test_today_by_hour_priority_and_endpoint_where_recorded(traffic) -> None:
    """Hours, priorities and endpoints are drawn when the status carries them (the
    state records them), and nothing stands in for them when it does not."""
    import attrs

    profile, state = traffic
    (status,) = [
        s for s in _cli_status.collect(state, None, "quotaflow", [profile]) if s.profile == "api"
    ]
    now = START.timestamp() + 61
    # The state records hours: the traffic's requests, each in one hour and priority.
    answered = sum(status.today[k] for k in ("hits", "misses", "revalidated", "stale", "refused"))
    assert answered > 0
    assert sum(row["requests"] for row in status.hours) == answered
    assert sum(row["requests"] for row in status.by_priority.values()) == answered
    assert sum(row["requests"] for row in status.by_endpoint.values()) == answered
    assert 'data-chart="hourly"' in _dashboard.render_page([status], now)
    plain = _dashboard.render_page(
        [attrs.evolve(status, hours=[], by_priority={}, by_endpoint={})], now
    )
    assert 'data-chart="hourly"' not in plain
    assert "Today by priority" not in plain

    recorded = attrs.evolve(
        status,
        hours=[{"hour": "2026-11-29T09", "spent": 2}, {"hour": "2026-11-29T12", "spent": 4}],
        by_priority={
            "critical": {"requests": 1, "spent": 2, "refused": 0},
            "low": {"requests": 3, "spent": 0, "refused": 1},
        },
        by_endpoint={f"/v4/sports/s{n}/odds": {"requests": n, "spent": n} for n in range(10)},
    )
    page = _dashboard.render_page([recorded], now)
    marks = re.findall(r'data-hour="(\d\d)" data-value="(\d+)"', page)
    assert marks == [("09", "2"), ("12", "4")]
    assert re.findall(r'<tr data-priority="(\w+)">', page) == ["critical", "low"]
    endpoints = re.findall(r'<tr data-endpoint="([^"]+)">', page)
    assert endpoints == [f"/v4/sports/s{n}/odds" for n in range(9, 1, -1)]  # most spent first
    assert "and 2 more" in page
