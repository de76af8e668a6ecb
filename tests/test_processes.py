"""Two processes sharing a state_dir share one quota and one cache."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

WORKER = textwrap.dedent(
    """
    import json, sys
    import httpx, respx
    import quotaflow
    from quotaflow import ApiProfile, Quota

    state_dir, name, go = sys.argv[1], sys.argv[2], sys.argv[3]
    router = respx.Router(assert_all_called=False)
    route = router.get(url__startswith="https://api.test/").respond(200, json={})
    profile = ApiProfile(name="api", hosts=("api.test",), quota=Quota(10), max_stale=0)
    refused = 0
    with quotaflow.make_client(
        profiles=[profile], plugins=False, state_dir=state_dir,
        transport=httpx.MockTransport(router.handler),
    ) as client:
        # Wait for the starting signal so both processes run at the same time.
        while not __import__("os").path.exists(go):
            pass
        for n in range(10):
            try:
                client.get(f"https://api.test/{name}/{n}", extensions={"priority": "critical"})
            except quotaflow.QuotaExhausted:
                refused += 1
    print(json.dumps({"upstream": route.call_count, "refused": refused}))
    """
)


def test_two_processes_spend_the_quota_once(tmp_path: Path) -> None:
    """10 units shared by two processes making 10 requests each: exactly 10 go upstream."""
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path / "state"), name, str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    go.touch()
    results = [json.loads(worker.communicate(timeout=60)[0]) for worker in workers]

    assert all(worker.returncode == 0 for worker in workers)
    assert sum(r["upstream"] for r in results) == 10
    assert sum(r["refused"] for r in results) == 10
