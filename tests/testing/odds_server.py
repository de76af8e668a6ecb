"""The Odds API v4 on 127.0.0.1, for recording: real sockets, a credit counter, honest
``x-requests-*`` headers, and traps for the recorder (the key echoed in a cookie, a
header and the body)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlsplit

import attrs

from quotaflow_theoddsapi import PROFILE, samples

from ..stub_server import LocalServer

KEY = "rec0rd-key-5ecret-9f8e7d"
#: The Odds API's profile, for the local host the recordings are made on.
LOCAL = attrs.evolve(PROFILE, hosts=("127.0.0.1",))
KICKOFF = 1_900_000_000.0  # far in the future: odds stay fresh for 15 minutes
REQUESTS = [
    ("/v4/sports", {}),
    ("/v4/sports/americanfootball_nfl/odds", {"regions": "us", "markets": "h2h,spreads"}),
    ("/v4/sports/basketball_nba/odds", {"regions": "us,uk", "markets": "h2h,totals"}),
    ("/v4/sports/americanfootball_nfl/scores", {"daysFrom": "1"}),
]
#: What REQUESTS cost: 0 + 2 + 4 + 2.
COST = 8


class OddsServer(LocalServer):
    """Answers /v4/sports, /odds and /scores; ``hits`` counts requests per path."""

    def __init__(self, *, used: int = 100, plan: int = 500) -> None:
        self.hits: Counter[str] = Counter()
        self.used, self.plan = used, plan
        lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                params = dict(parse_qsl(parts.query))
                with lock:
                    server.hits[parts.path] += 1
                if params.get("apiKey") != KEY:
                    self._send(401, samples.error(401, "INVALID_KEY", "bad key").content, None)
                    return
                sport = parts.path.split("/")[3] if parts.path.count("/") >= 4 else ""
                if parts.path == "/v4/sports":
                    body, cost = samples.sports(), 0
                elif parts.path.endswith("/odds"):
                    markets = params.get("markets", "h2h").split(",")
                    regions = params.get("regions", "us").split(",")
                    event = samples.event(sport, "Home", "Away", KICKOFF, markets=markets)
                    event["requested_with"] = params["apiKey"]  # an API echoing the key
                    body, cost = json.dumps([event]).encode(), len(markets) * len(regions)
                else:
                    game = samples.score(sport, "Home", "Away", KICKOFF, now=KICKOFF - 60)
                    body, cost = json.dumps([game]).encode(), 2 if "daysFrom" in params else 1
                with lock:
                    server.used += cost
                    quota = samples.quota_headers(
                        used=server.used, remaining=server.plan - server.used, last=cost
                    )
                self._send(200, body, quota)

            def _send(self, status: int, body: bytes, quota: dict[str, str] | None) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.send_header("set-cookie", f"session={KEY}; HttpOnly")
                self.send_header("x-request-url", f"{self.path}")
                for name, value in (quota or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._serve(Handler)
