"""``quotaflow record`` and ``quotaflow replay``, through main() and as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from quotaflow._cli import main
from quotaflow.testing import read_cassette

from .odds_server import KEY, REQUESTS, OddsServer

SCRIPT = Path(sys.executable).with_name("quotaflow")
DAY = Path(__file__).parent.parent.parent / "benchmarks" / "fixtures" / "odds_day.json"
ODDS = "https://api.the-odds-api.com/v4/sports"
# The recorded morning (10:00 UTC): the sports list and four slates, 3 credits each.
MORNING = [
    f"{ODDS}?apiKey=cli-key-not-real",
    *(
        f"{ODDS}/{sport}/odds?apiKey=cli-key-not-real&regions=us&markets=h2h,spreads,totals"
        "&oddsFormat=decimal"
        for sport in ("americanfootball_nfl", "basketball_nba", "baseball_mlb", "icehockey_nhl")
    ),
]


def urls(base: str) -> list[str]:
    return [
        f"{base}{path}?apiKey={KEY}" + "".join(f"&{k}={v}" for k, v in params.items())
        for path, params in REQUESTS
    ]


def test_record_then_record_again_sends_nothing_new(tmp_path, capsys) -> None:
    """record writes every answer, without the key; again (new_episodes) sends nothing."""
    cassette = tmp_path / "c.json"
    listed = tmp_path / "urls.txt"
    with OddsServer() as server:
        listed.write_text("# what the scraper asks\n" + "\n".join(urls(server.base)[1:]) + "\n")
        first = main(["record", str(cassette), urls(server.base)[0], "--from", str(listed)])
        sent = server.hits.total()
        again = main(["record", str(cassette), *urls(server.base)])

    out = capsys.readouterr().out
    assert (first, again) == (0, 0)
    assert sent == len(REQUESTS)
    assert server.hits.total() == sent
    assert len(read_cassette(cassette)) == len(REQUESTS)
    assert KEY not in out
    assert KEY.encode() not in cassette.read_bytes()
    assert f"{len(REQUESTS)} exchanges in {cassette}" in out


def test_replay_says_what_each_run_costs(capsys) -> None:
    """The recorded morning costs 12 credits; run again at once it costs nothing."""
    assert main(["replay", str(DAY), *MORNING, "--runs", "2"]) == 0

    out = capsys.readouterr().out
    assert "run 1: 5 requests, 12 credits" in out
    assert "run 2: 5 requests, 0 credits" in out
    assert "cli-key-not-real" not in out


def test_replay_without_urls_replays_the_whole_cassette(capsys) -> None:
    """Every recorded GET, in order."""
    assert main(["replay", str(DAY)]) == 0

    assert "run 1: 8 requests, 15 credits" in capsys.readouterr().out


def test_replay_of_an_unrecorded_url_fails_naming_the_closest(capsys) -> None:
    """Exit 1; the message names the closest recording, never the key."""
    url = f"{ODDS}/americanfootball_nfl/odds?apiKey=cli-key-not-real&regions=eu"

    assert main(["replay", str(DAY), url]) == 1

    err = capsys.readouterr().err
    assert (
        "closest recorded: GET https://api.the-odds-api.com/v4/sports/americanfootball_nfl/odds?regions=us"
        in err
    )
    assert "cli-key-not-real" not in err


def test_replay_as_a_command(tmp_path) -> None:
    """The installed script, in a process of its own."""
    done = subprocess.run(
        [str(SCRIPT), "replay", str(DAY), MORNING[1]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )

    assert done.returncode == 0, done.stderr
    assert "run 1: 1 request, 3 credits" in done.stdout
