"""import quotaflow is cheap (issue 16): nothing heavy loads until it is used."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("redis", "hishel", "pyrate_limiter", "sqlite3", "quotaflow._cli", "quotaflow._dashboard")


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_import_loads_nothing_heavy() -> None:
    """Neither Redis, hishel, pyrate-limiter, SQLite, the CLI, the dashboard nor any
    plugin is imported by ``import quotaflow``, nor by the public modules."""
    modules = loaded_after("import quotaflow, quotaflow.exceptions")
    heavy = {m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY}
    plugins = {m for m in modules if m.startswith("quotaflow_")}
    assert heavy == set()
    assert plugins == set()


def test_names_load_when_used() -> None:
    """A public name resolves on first use, to the same object every time."""
    modules = loaded_after(
        "import quotaflow\n"
        "assert quotaflow.make_client is quotaflow.make_client\n"
        "from quotaflow import Rate, Priority\n"
        "import quotaflow.profiles\n"
        "assert Rate is quotaflow.profiles.Rate"
    )
    assert "quotaflow._client" in modules
    assert "quotaflow._cli" not in modules
