"""Every ```python block of the repo's Markdown runs as written: README.md, docs/*.md,
plugins/*/README.md and benchmarks/*.md.

Each block runs in an empty working directory with its own state (``$QUOTAFLOW_HOME``)
and brings its own imports and stubs. One documented fixture, :func:`offline`, stands
in for the network under every block: it answers ``api.the-odds-api.com`` with The Odds
API plugin's recorded samples (cost, ``x-requests-*`` headers and all), so blocks that
show real use (``make_client(params={"apiKey": KEY})`` and a plain ``client.get``) run
offline; any other host is refused, so no block can reach the network. It also sets
``ODDS_API_KEY`` to a fake key, which those blocks read from the environment.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx
from respx.models import AllMockedAssertionError

ROOT = Path(__file__).parent.parent
FILES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "plugins").glob("*/README.md")),
    *sorted((ROOT / "benchmarks").glob("*.md")),
]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT).with_suffix("")).replace("/", "-")


EXAMPLES = [
    pytest.param(code, id=f"{_name(path)}-{n}")
    for path in FILES
    for n, code in enumerate(BLOCK.findall(path.read_text()), start=1)
]
ODDS = "https://api.the-odds-api.com"
FAKE_KEY = "docs-key-not-real"


def odds_api(request: httpx.Request) -> httpx.Response:
    """The Odds API v4, offline: sports, odds and events from the plugin's samples."""
    samples = pytest.importorskip("quotaflow_theoddsapi.samples")
    if request.url.params.get("apiKey") != FAKE_KEY:
        return samples.error(401, "INVALID_KEY", "API key is not valid")
    path = request.url.path.rstrip("/")
    parts = path.split("/")
    if path == "/v4/sports":
        return samples.response(samples.sports(), used=10, remaining=490, last=0)
    if len(parts) == 5 and parts[4] in ("odds", "events"):
        kick_off = time.time() + 3 * 3600
        games = [samples.event(parts[3], "Home Team", "Away Team", kick_off)]
        if parts[4] == "events":
            return samples.response(samples.events(games), used=10, remaining=490, last=0)
        markets = request.url.params.get("markets", "h2h").split(",")
        regions = request.url.params.get("regions", "us").split(",")
        cost = len(markets) * len(regions)
        games = [samples.event(parts[3], "Home Team", "Away Team", kick_off, markets=markets)]
        return samples.response(
            samples.odds(games), used=10 + cost, remaining=490 - cost, last=cost
        )
    return samples.error(404, "UNKNOWN_SPORT", f"no stub for {path}")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[respx.MockRouter]:
    """The network for docs blocks: The Odds API from samples; every other host refused.

    respx patches httpcore, below quotaflow's own transport, so the whole stack runs.
    Blocks that pass their own ``transport=`` never reach it.
    """
    monkeypatch.setenv("ODDS_API_KEY", FAKE_KEY)
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        router.route(url__startswith=ODDS).mock(side_effect=odds_api)
        yield router


@pytest.mark.parametrize("code", EXAMPLES)
def test_example_runs(code: str, tmp_path, monkeypatch, offline, capsys) -> None:
    """Run one example in an empty directory with its own state."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUOTAFLOW_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("QUOTAFLOW_REDIS_URL", raising=False)
    exec(compile(code, "<docs example>", "exec"), {"__name__": "__docs__"})


def test_every_file_has_examples() -> None:
    """The README, the guides and each plugin's README carry runnable examples."""
    counts = {_name(path): len(BLOCK.findall(path.read_text())) for path in FILES}
    plugins = {path.name for path in (ROOT / "plugins").iterdir() if path.is_dir()}
    assert {f"plugins-{name}-README" for name in plugins} <= set(counts)
    assert counts["README"] >= 4
    assert all(counts[f"plugins-{name}-README"] >= 1 for name in plugins)
    assert len(EXAMPLES) >= 20


def test_the_network_is_refused(offline) -> None:
    """The fixture refuses hosts it does not stub: no example reaches the network."""
    with pytest.raises(AllMockedAssertionError), httpx.Client() as client:
        client.get("https://example.org/")


def test_the_odds_stub_charges_like_the_api(offline, tmp_path) -> None:
    """The stand-in for The Odds API reports markets x regions in x-requests-last."""
    import quotaflow

    with quotaflow.make_client(params={"apiKey": FAKE_KEY}, state_dir=tmp_path) as client:
        response = client.get(
            f"{ODDS}/v4/sports/basketball_nba/odds", params={"regions": "us,uk", "markets": "h2h"}
        )
    assert response.headers["x-requests-last"] == "2"
    assert response.extensions["quotaflow"].cost == 2
    assert response.json()[0]["sport_key"] == "basketball_nba"


def test_no_markdown_file_is_left_out() -> None:
    """A new Markdown file anywhere in the repo is run too (or this test names it)."""
    found = set()
    for folder, folders, files in os.walk(ROOT):
        # Hidden folders (.git, .venv, caches) and build output are not the repo's docs.
        folders[:] = [name for name in folders if not name.startswith(".")]
        folders[:] = [name for name in folders if name not in ("build", "dist")]
        found |= {Path(folder) / name for name in files if name.endswith(".md")}
    assert found <= set(FILES), sorted(str(path.relative_to(ROOT)) for path in found - set(FILES))
