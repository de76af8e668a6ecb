"""alert_command: the user's command, run once per alert crossing, never in the way."""

from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path

import httpx
import pytest
import respx

import quotaflow
from quotaflow import ConfigError
from quotaflow._alert_command import AlertCommand

from .conftest import BASE, api_profile, info

URL = f"{BASE}/odds"
# Writes the alert's environment as JSON to the file named by its argument.
WRITE_ENV = (
    "import json, os, sys; "
    "keys = ('QUOTAFLOW_PROFILE', 'QUOTAFLOW_REMAINING', 'QUOTAFLOW_THRESHOLD', "
    "'QUOTAFLOW_TOTAL'); "
    "open(sys.argv[1], 'a').write(json.dumps({k: os.environ[k] for k in keys}) + '\\n')"
)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[threading.Thread]:
    """The threads alert commands run in, to join (no sleeping)."""
    threads: list[threading.Thread] = []
    original = AlertCommand.run

    def spy(self: AlertCommand, *args: object) -> threading.Thread:
        thread = original(self, *args)  # type: ignore[arg-type]
        threads.append(thread)
        return thread

    monkeypatch.setattr(AlertCommand, "run", spy)
    return threads


def answers(router: respx.Router, *remaining: int) -> respx.Route:
    return router.get(url__startswith=URL).mock(
        side_effect=[
            httpx.Response(200, json={}, headers={"x-remaining": str(n), "x-used": str(100 - n)})
            for n in remaining
        ]
    )


def test_the_command_runs_once_per_crossing_with_its_environment(
    stack, router: respx.Router, tmp_path: Path, started
) -> None:
    """Alerts at 10 % and 5 units: 50 -> 9 crosses 10, 8 crosses nothing, 4 crosses
    5. Two runs, each with the profile, what is left, the level and the quota."""
    out = tmp_path / "alerts.jsonl"
    route = answers(router, 50, 9, 8, 4)
    client = stack(
        profiles=[api_profile(alerts=(0.1, 5))],
        alert_command=[sys.executable, "-c", WRITE_ENV, str(out)],
    )

    for i in range(4):
        client.get(f"{URL}?n={i}", extensions={"priority": "critical"})
    for thread in started:
        thread.join(10)

    assert route.call_count == 4
    assert len(started) == 2
    runs = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(runs, key=lambda run: run["QUOTAFLOW_THRESHOLD"]) == [
        {
            "QUOTAFLOW_PROFILE": "api",
            "QUOTAFLOW_REMAINING": "9",
            "QUOTAFLOW_THRESHOLD": "10",
            "QUOTAFLOW_TOTAL": "100",
        },
        {
            "QUOTAFLOW_PROFILE": "api",
            "QUOTAFLOW_REMAINING": "4",
            "QUOTAFLOW_THRESHOLD": "5",
            "QUOTAFLOW_TOTAL": "100",
        },
    ]


@pytest.mark.parametrize(
    ("argv", "logged"),
    [
        ([sys.executable, "-c", "import sys; sys.exit('boom')"], "exited 1: boom"),
        (["/nonexistent/quotaflow-alert"], "failed"),
    ],
)
def test_a_failing_command_is_logged_never_raised(
    stack, router: respx.Router, started, caplog, argv, logged
) -> None:
    """A command that fails or is not there: the request is answered, a WARNING says."""
    route = answers(router, 5)
    client = stack(alert_command=argv)

    with caplog.at_level(logging.WARNING, logger="quotaflow"):
        response = client.get(URL)
        for thread in started:
            thread.join(10)

    assert route.call_count == 1
    assert response.status_code == 200
    assert info(response).remaining == 5
    messages = [r.getMessage() for r in caplog.records if "alert_command" in r.getMessage()]
    assert len(messages) == 1
    assert logged in messages[0]


def test_a_command_past_its_timeout_is_killed_and_logged(caplog) -> None:
    """The timeout kills it (the thread ends), and says so."""
    command = AlertCommand((sys.executable, "-c", "import time; time.sleep(60)"), timeout=0.3)

    with caplog.at_level(logging.WARNING, logger="quotaflow"):
        thread = command.run("api", 3, 10, 100)
        thread.join(30)

    assert not thread.is_alive()
    assert any("timed out" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("value", ["notify-send quota", [], ["ok", 3], [""], 7])
def test_a_bad_command_is_refused_at_build(tmp_path: Path, value: object) -> None:
    """Not a list of strings: refused when the client is built, naming the field."""
    with pytest.raises(ConfigError, match="alert_command"):
        quotaflow.make_client(
            plugins=False,
            config=False,
            state_dir=tmp_path,
            alert_command=value,  # type: ignore[arg-type]
        )


def test_the_command_from_the_config_file(
    stack, router: respx.Router, tmp_path: Path, started
) -> None:
    """``alert_command`` at the top of the TOML file; a bad one names file and line."""
    out = tmp_path / "alerts.jsonl"
    good = tmp_path / "good.toml"
    good.write_text(f"alert_command = {json.dumps([sys.executable, '-c', WRITE_ENV, str(out)])}\n")
    bad = tmp_path / "bad.toml"
    bad.write_text('cache = true\nalert_command = "notify-send low"\n')
    answers(router, 3)

    client = stack(config=good)
    client.get(URL)
    for thread in started:
        thread.join(10)
    with pytest.raises(ConfigError, match=r"bad.toml, line 2: alert_command"):
        stack(config=bad)

    assert json.loads(out.read_text())["QUOTAFLOW_REMAINING"] == "3"
