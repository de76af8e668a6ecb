"""The free probe for a lost ledger (``ApiProfile.probe``): once per ledger row found
unknown, a GET the API does not charge for, whose quota headers sync the row. Strictly
private."""

from __future__ import annotations

import httpx

from .._clock import Clock
from .._info import Route
from .._state._books import Settled, account_name
from .._state._ledger import Ledger
from ._guarded import guarded_reading


def probe_request(route: Route) -> httpx.Request:
    """The free probe: a GET of ``ApiProfile.probe`` on the request's host, with its
    credentials (the secret query parameters and headers) and nothing else."""
    profile = route.profile
    assert profile.probe is not None
    params = httpx.QueryParams(
        [(k, v) for k, v in route.url.params.multi_items() if k in profile.secret_params]
    )
    url = route.url.copy_with(path=profile.probe, query=None)
    return httpx.Request("GET", url, params=params, headers=list(route.secret_headers))


class LostLedgerProbe:
    """When to probe, and what the probe's answer settles. One per limiter."""

    def __init__(self, ledger: Ledger, clock: Clock) -> None:
        self._ledger = ledger
        self._clock = clock
        self._probed: set[str] = set()  # ledger rows this process sent the probe for

    def wanted(self, route: Route) -> bool:
        """Whether to send the profile's free probe now: its ledger row was found
        unknown (lost) and this process has not probed it yet (once per row)."""
        profile = route.profile
        if profile.probe is None or not self._ledger.unknown:
            return False
        name = account_name(profile, route.account)
        if name not in self._ledger.unknown or name in self._probed:
            return False
        self._probed.add(name)
        return True

    def answered(self, route: Route, response: httpx.Response) -> Settled | None:
        """The probe's answer: the API's count syncs the ledger (it cost nothing);
        None if it gave no count."""
        reading = guarded_reading(route.profile, response)
        if reading.remaining is None:
            return None
        return self._ledger.record(
            route.profile, None, 0, reading, self._clock.time(), account=route.account
        )
