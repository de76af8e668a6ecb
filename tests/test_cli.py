"""The ``quotaflow`` command and its offline demo."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from quotaflow._cli import main
from quotaflow._version import __version__

ROW = re.compile(
    r"^  (\d\d:\d\d:\d\d)  (.{20}) (miss|hit|stale|refused)\s+cost\s+(\d+)"
    r"  remaining\s+(\d+)  (.+)$",
    re.MULTILINE,
)


def _number(text: str, label: str) -> int:
    found = re.search(rf"^  {label}\s+(\d+)", text, re.MULTILINE)
    assert found, f"no {label!r} in the summary"
    return int(found.group(1))


@pytest.fixture
def demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """The demo's output, with its state kept in tmp_path."""
    assert main(["demo", "--state-dir", str(tmp_path)]) == 0
    assert {"cache.db", "state.db"} <= {path.name for path in tmp_path.iterdir()}
    return capsys.readouterr().out


def test_demo_summary_matches_its_rows(demo: str) -> None:
    """Every number in the summary follows from the request rows above it."""
    rows = ROW.findall(demo)
    outcomes = [row[2] for row in rows]
    requests, upstream = _number(demo, "requests made"), _number(demo, "upstream calls")
    assert len(rows) == requests
    assert upstream == outcomes.count("miss") < requests
    assert _number(demo, "stale answers served") == outcomes.count("stale") > 0
    spent = _number(demo, "quota units spent")
    assert spent == sum(int(row[3]) for row in rows if row[2] == "miss")
    assert f"180 -> {180 + spent} of 500" in demo
    assert int(rows[-1][4]) == 500 - 180 - spent
    saved = _number(demo, "units saved by the cache")
    assert 0 < saved < spent
    assert f"({outcomes.count('hit')} cache hits)" in demo


def test_demo_fallback_and_reserve(demo: str) -> None:
    """The outage is bridged by stale answers with a reason and an age; LOW is held back."""
    stale = [row for row in ROW.findall(demo) if row[2] == "stale"]
    assert stale
    reasons = [re.fullmatch(r"served stale \((\w+)\), \d+m old", row[5]) for row in stale]
    assert all(reasons)
    # The first failures are network errors; once five in a row open the circuit,
    # the rest are answered without asking.
    assert [m.group(1) for m in reasons if m] == ["network", "circuit_open", "circuit_open"]
    assert [row[1].strip() for row in ROW.findall(demo) if row[2] == "refused"] == [
        "NFL history (LOW)"
    ]
    assert "(+5 failed in the outage)" in demo


def test_demo_ttl_follows_the_slate(demo: str) -> None:
    """Run 1's misses get the TTL the freshness rule derives from each sport's games."""
    first = {row[1].strip(): row[5] for row in ROW.findall(demo) if row[0] == "13:00:00"}
    assert first["NFL odds"].startswith("fresh for 120s: first game in 5h00m")
    assert first["NBA odds"].startswith("fresh for 300s: first game in 10h00m")
    assert first["MLB odds"].startswith("fresh for 15m: no games")
    assert first["sports list"].startswith("fresh for 6h")


def test_demo_keeps_the_key_out_of_state(demo: str, tmp_path: Path) -> None:
    """The apiKey the simulated API insists on is in no file of the state directory."""
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert files
    assert not any(b"demo-key-not-real" in path.read_bytes() for path in files)
    assert re.search(r"^API key found in state: no \(\d+ files scanned\)$", demo, re.MULTILINE)


def test_demo_costs_match_the_api_counter(demo: str) -> None:
    """Every answer's reported cost adds up to what the API's own counter charged."""
    rows = ROW.findall(demo)
    assert all(row[3] == "0" for row in rows if row[2] in ("hit", "stale"))
    spent = sum(int(row[3]) for row in rows if row[2] != "refused")
    assert spent == _number(demo, "quota units spent")


def test_demo_output_is_deterministic(demo: str, tmp_path_factory, capsys) -> None:
    """A second run prints the same replay, apart from the state directory's path."""
    assert main(["demo", "--state-dir", str(tmp_path_factory.mktemp("again"))]) == 0
    again = capsys.readouterr().out

    def body(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("  state ")]

    assert body(again) == body(demo)


def test_demo_default_state_dir_is_temporary(capsys) -> None:
    """Without --state-dir the demo uses a temporary directory and deletes it."""
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    found = re.search(r"^  state  (\S+) \(temporary, deleted at the end\)$", out, re.MULTILINE)
    assert found
    assert not Path(found.group(1)).exists()


def test_demo_refuses_a_used_state_dir(tmp_path, capsys) -> None:
    """A state directory that already holds files is refused, not overwritten."""
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["demo", "--state-dir", str(tmp_path)]) == 2
    assert "must be new or empty" in capsys.readouterr().err
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("module", ["respx", "time_machine", "quotaflow_theoddsapi"])
def test_demo_names_what_to_install(module, monkeypatch, capsys) -> None:
    """A missing demo dependency gives one line saying what to install, and status 2."""
    monkeypatch.setitem(sys.modules, module, None)
    assert main(["demo"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "pip install 'quotaflow[demo]' quotaflow-theoddsapi" in captured.err
    assert f"needs {module.replace('_', '-')}:" in captured.err


def test_version(capsys) -> None:
    """--version prints the package version and exits 0."""
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"quotaflow {__version__}\n"


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"]])
def test_help(argv, capsys) -> None:
    """--help describes the commands and options and exits 0."""
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "usage: quotaflow" in out
    assert ("--state-dir" if "demo" in argv else "demo") in out


def test_no_command_prints_usage(capsys) -> None:
    """Without a command the help goes to stderr and the status is 2."""
    assert main([]) == 2
    assert "usage: quotaflow" in capsys.readouterr().err


def test_explain_says_what_a_request_would_do_without_sending(tmp_path, capsys) -> None:
    """The profile, the credential partition, the rules, the cost and what would happen:
    nothing sent, the key never printed."""
    url = (
        "https://api.the-odds-api.com/v4/sports/basketball_nba/odds"
        "?regions=us&markets=h2h,spreads&apiKey=SEKRIT"
    )
    assert main(["explain", url, "--state-dir", str(tmp_path), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)

    assert found["profile"] == "theoddsapi"
    assert found["cost"] == 2
    assert found["would"] == "go upstream, cost 2"
    assert "shared_answers" in found["credentials"]
    assert "SEKRIT" not in json.dumps(found)


def test_explain_on_an_unprofiled_host(tmp_path, capsys) -> None:
    assert main(["explain", "https://plain.example/x", "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out

    assert "profile      default" in out
    assert "else not stored (no default_ttl)" in out
    assert "would        go upstream, cost 0" in out


def test_plugin_commands_and_demo_come_through_the_hook(tmp_path, monkeypatch, capsys) -> None:
    """A plugin adds a command (``Plugin.commands``) and provides the demo
    (``Plugin.demo``); the core runs them without importing the plugin."""
    from quotaflow import Plugin, _cli

    ran: list[object] = []

    def commands(subparsers) -> None:
        greet = subparsers.add_parser("greet", help="say hello")
        greet.add_argument("name")
        greet.set_defaults(handler=lambda args: ran.append(args.name) or 7)

    def demo(state_dir: Path, out, *, temporary: bool) -> None:
        ran.append((state_dir, temporary))
        print("demo ran", file=out)

    plugin = Plugin(name="toy", commands=commands, demo=demo)
    monkeypatch.setattr(_cli, "installed_plugins", lambda: [plugin])

    assert main(["greet", "world"]) == 7
    assert ran == ["world"]
    assert main(["demo", "--state-dir", str(tmp_path / "new")]) == 0
    assert ran[-1] == (tmp_path / "new", False)
    assert "demo ran" in capsys.readouterr().out
    assert main(["--help"]) == 0
    assert "greet" in capsys.readouterr().out
    assert main(["demo", "--plugin", "other"]) == 2
    assert "needs a plugin 'other'" in capsys.readouterr().err


def test_a_broken_plugin_hook_leaves_the_core_commands(monkeypatch, capsys) -> None:
    """A plugin whose ``commands`` raises is named on stderr; the rest still works."""
    from quotaflow import Plugin, _cli

    def commands(subparsers) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(
        _cli, "installed_plugins", lambda: [Plugin(name="broken", commands=commands)]
    )
    assert main(["--version"]) == 0
    assert "plugin 'broken' could not add its commands: boom" in capsys.readouterr().err


def test_plugin_command_without_the_plugin_says_what_to_install(monkeypatch, capsys) -> None:
    """``quotaflow history`` without quotaflow-theoddsapi: one line naming it, status 2."""
    from quotaflow import _cli

    monkeypatch.setattr(_cli, "installed_plugins", list)
    assert main(["history", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "pip install quotaflow-theoddsapi" in err
    assert main(["demo"]) == 2
    assert "needs quotaflow-theoddsapi:" in capsys.readouterr().err


def test_several_demos_are_chosen_with_plugin(tmp_path, monkeypatch, capsys) -> None:
    """With two plugins that have a demo, ``--plugin`` picks one; without it, status 2
    and a line naming both."""
    from quotaflow import Plugin, _cli

    ran: list[str] = []

    def demo_of(name: str):  # type: ignore[no-untyped-def]
        return lambda state_dir, out, *, temporary: ran.append(name)

    plugins = [Plugin(name=name, demo=demo_of(name)) for name in ("one", "two")]
    monkeypatch.setattr(_cli, "installed_plugins", lambda: plugins)
    assert main(["demo"]) == 2
    assert "several plugins have a demo (one, two): choose with --plugin" in (
        capsys.readouterr().err
    )
    assert main(["demo", "--plugin", "two"]) == 0
    assert ran == ["two"]
