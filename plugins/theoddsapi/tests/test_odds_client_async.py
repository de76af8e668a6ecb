"""AsyncOddsApi: the async twin, on a plain httpx.AsyncClient and on quotaflow's."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import respx
import time_machine

import quotaflow
from quotaflow_theoddsapi import PROFILE, AsyncOddsApi, OddsApiError, Usage, samples

HOST = "api.the-odds-api.com"
SPORT = "basketball_nba"
KEY = "SECRET-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
HOUR = 3600

pytestmark = pytest.mark.anyio


async def test_every_method_on_a_plain_async_client(router: respx.Router, start: float) -> None:
    """Each method sends what its sync twin sends and parses the same shapes."""
    event = samples.event(SPORT, "Lakers", "Celtics", start + HOUR)
    base = f"/v4/sports/{SPORT}"
    router.get(host=HOST, path="/v4/sports").mock(
        return_value=samples.response(samples.sports([SPORT]), used=5, remaining=495, last=0)
    )
    router.get(host=HOST, path=f"{base}/odds").mock(
        return_value=samples.response(samples.odds([event]), used=6, remaining=494, last=1)
    )
    router.get(host=HOST, path=f"{base}/events").mock(
        return_value=httpx.Response(200, content=samples.events([event]))
    )
    router.get(host=HOST, path=f"{base}/events/{event['id']}/odds").mock(
        return_value=httpx.Response(200, json=event)
    )
    scores = router.get(host=HOST, path=f"{base}/scores").mock(
        return_value=httpx.Response(
            200, content=samples.scores([samples.score(SPORT, "A", "B", start + HOUR, now=start)])
        )
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(router.handler)) as client:
        api = AsyncOddsApi(client, api_key=KEY)

        assert [sport.key for sport in await api.sports(all=True)] == [SPORT]
        [odds] = await api.odds(SPORT)
        assert odds.home_team == "Lakers"
        assert api.usage == Usage(remaining=494, used=6, last=1)
        [listed] = await api.events(SPORT)
        assert listed.bookmakers == ()
        single = await api.event_odds(SPORT, listed.id)
        assert single == odds
        [score] = await api.scores(SPORT, days_from=1)
        assert score.scores is None
        assert scores.calls.last.request.url.params["daysFrom"] == "1"
        assert api.usage == Usage()


async def test_errors_on_a_plain_async_client(router: respx.Router) -> None:
    """The documented error JSON raises OddsApiError in the async twin too."""
    router.get(host=HOST, path="/v4/sports").mock(
        return_value=samples.error(401, "MISSING_KEY", "API key is missing.")
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(router.handler)) as client:
        with pytest.raises(OddsApiError) as raised:
            await AsyncOddsApi(client).sports()
    assert (raised.value.code, raised.value.status) == ("MISSING_KEY", 401)


async def test_through_quotaflow_async(
    tmp_path: Path, router: respx.Router, traveller: time_machine.Traveller, start: float
) -> None:
    """Through make_async_client the second identical call is served from the cache."""
    route = router.get(host=HOST, path=f"/v4/sports/{SPORT}/odds").mock(
        return_value=samples.response(
            samples.odds([samples.event(SPORT, "A", "B", start + 3 * HOUR)]),
            used=10,
            remaining=490,
            last=1,
        )
    )
    client = quotaflow.make_async_client(
        profiles=[PROFILE],
        plugins=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
    )
    async with client:
        api = AsyncOddsApi(client, api_key=KEY)
        first = await api.odds(SPORT)
        second = await api.odds(SPORT)
    assert route.call_count == 1
    assert first == second
    assert first[0].commence_time.timestamp() == start + 3 * HOUR
