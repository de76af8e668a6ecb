"""GETs that need no work (issue 16): to a URL no profile matches, whose last answer was
never reused, a GET goes from the outermost layer straight to the network, and its
answer gets exactly what the whole stack would give it (``_transports/_bare.py``).

The whole stack is the reference: a client with a subscriber of its own sends every
request through it, so each answer below goes through both and must come out alike."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from quotaflow._info import ROUTE
from quotaflow._transports._bare import BARE

from .conftest import Harness, info
from .test_no_work import OTHER

PAST = "Sat, 28 Nov 2026 10:00:00 GMT"
DATE = {"date": "Sun, 29 Nov 2026 12:00:00 GMT"}  # conftest's START
AHEAD = "Sun, 29 Nov 2026 13:00:00 GMT"  # an origin whose clock is an hour ahead

ANSWERS: dict[str, tuple[int, dict[str, str]]] = {
    "nothing said": (200, {}),
    "max-age=0": (200, {"cache-control": "max-age=0"}),
    "no-store": (200, {"cache-control": "no-store, max-age=600"}),
    "fresh": (200, {"cache-control": "max-age=600"}),
    "an ETag": (200, {"etag": '"v1"'}),
    "Last-Modified": (200, {"last-modified": PAST}),
    "Expires past": (200, {"expires": PAST}),
    "Expires ahead": (200, {"expires": "Sun, 29 Nov 2026 13:30:00 GMT"}),
    "Date ahead": (200, {"date": AHEAD, "expires": "Sun, 29 Nov 2026 13:30:00 GMT"}),
    "Date unreadable": (200, {"date": "yesterday", "cache-control": "max-age=0"}),
    "Vary: *": (200, {"vary": "*", "cache-control": "max-age=600"}),
    "Vary: accept": (200, {"vary": "accept"}),
    "s-maxage only": (200, {"cache-control": "s-maxage=600"}),
    "an event stream": (200, {"content-type": "text/event-stream", "cache-control": "max-age=9"}),
    "404": (404, {}),
    "500": (500, {}),
    "304 unasked": (304, {}),
    "another cache's status": (200, {"cache-status": "upstream; hit"}),
}


def _client(stack: Callable[..., Harness], whole: bool, state: Path) -> Harness:
    if whole:
        return stack(subscribers=[lambda event: None], state_dir=state / "whole")
    return stack(state_dir=state / "light")


def _seen(response: httpx.Response) -> tuple[Any, ...]:
    headers = response.headers
    return info(response), headers.get("cache-status"), headers["date"], response.status_code


@pytest.mark.parametrize("name", list(ANSWERS))
def test_an_answer_gets_what_the_whole_stack_gives_it(
    stack: Callable[..., Harness], router: respx.Router, tmp_path: Path, name: str
) -> None:
    """After one answer that is never reused, the next (``name``) and the one after it
    (fresh) come out of the light path as out of the whole stack, upstream called alike."""
    status, headers = ANSWERS[name]
    seen: dict[bool, list[tuple[Any, ...]]] = {}
    calls: dict[bool, int] = {}
    upstream: list[httpx.Request] = []
    for whole in (True, False):
        answers = iter(
            [
                httpx.Response(200, text="a", headers=DATE),
                httpx.Response(status, text="b", headers={**DATE, **headers}),
                httpx.Response(200, text="c", headers={**DATE, "cache-control": "max-age=600"}),
                httpx.Response(200, text="d", headers={**DATE, "cache-control": "max-age=600"}),
            ]
        )

        def answer(request: httpx.Request, answers: Any = answers) -> httpx.Response:
            upstream.append(request)
            return next(answers)

        route = router.get(OTHER).mock(side_effect=answer)
        client = _client(stack, whole, tmp_path)
        responses = [client.get(OTHER) for _ in range(4)]
        seen[whole] = [_seen(r) for r in responses]
        calls[whole] = route.call_count
        router.routes.clear()

    assert seen[False] == seen[True]
    assert calls[False] == calls[True]
    # The second request went around the stack: upstream got the caller's own request.
    assert ROUTE in upstream[1].extensions
    assert ROUTE not in upstream[calls[True] + 1].extensions


def test_an_answer_comes_as_upstream_sent_it(
    stack: Callable[..., Harness], router: respx.Router, statements: Counter[str]
) -> None:
    """No storage touched, the body and headers as sent (no Date added: it is never
    stored), quotaflow's Cache-Status member appended after another cache's."""
    route = router.get(OTHER).respond(
        200, content=b"x" * 3000, headers={"x-one": "1", "cache-status": "edge; hit"}
    )
    client = stack()

    client.get(OTHER)
    statements.clear()
    rest = [client.get(OTHER) for _ in range(3)]

    assert route.call_count == 4
    assert statements["cache.db"] == 0
    assert {r.content for r in rest} == {b"x" * 3000}
    assert {r.headers.get("date") for r in rest} == {None}
    assert {r.headers["x-one"] for r in rest} == {"1"}
    assert {r.headers["cache-status"] for r in rest} == {
        "edge; hit, quotaflow; fwd=uri-miss; fwd-status=200"
    }
    assert {(info(r).cache, info(r).stored, info(r).profile) for r in rest} == {
        ("miss", False, "default")
    }


def test_priority_and_cache_directives_still_count(
    stack: Callable[..., Harness], router: respx.Router
) -> None:
    """The request's priority is in its ResponseInfo; a request with a cache directive
    or a credential header of its own goes through the whole stack."""
    router.get(OTHER).respond(200, text="a")
    client = stack()
    client.get(OTHER)

    low = client.get(OTHER, extensions={"priority": "low"})
    directed = client.get(OTHER, headers={"cache-control": "no-cache"})
    keyed = client.get(OTHER, headers={"authorization": "Bearer one"})

    assert info(low).priority == "low"
    assert ROUTE not in low.request.extensions
    assert ROUTE in directed.request.extensions
    assert ROUTE in keyed.request.extensions


def test_a_default_freshness_keeps_gets_in_the_whole_stack(
    stack: Callable[..., Harness], router: respx.Router
) -> None:
    """With ``default_ttl``, an answer that says nothing is fresh for that long: after a
    500 (never reused), the next 200 is stored and the one after is a hit."""
    answers = iter([httpx.Response(500), httpx.Response(200, text="ok")])
    route = router.get(OTHER).mock(side_effect=lambda request: next(answers))
    client = stack(default_ttl=60)

    _, second, third = (client.get(OTHER) for _ in range(3))

    assert route.call_count == 2
    assert (info(second).stored, info(third).cache, third.text) == (True, "hit", "ok")


def test_a_no_store_url_rule_keeps_its_reason(
    stack: Callable[..., Harness], router: respx.Router
) -> None:
    """A URL the client's rules say never to store is passed by the caching layer with
    that reason, every time."""
    route = router.get(OTHER).respond(200, text="a")
    client = stack(url_rules={"example.org/*": "no-store"})

    responses = [client.get(OTHER) for _ in range(3)]

    assert route.call_count == 3
    assert {info(r).reason for r in responses} == {
        "never stored: the URL rule 'example.org/*' says no-store"
    }


def test_without_a_cache_every_get_goes_through_the_stack(
    stack: Callable[..., Harness], router: respx.Router
) -> None:
    router.get(OTHER).respond(200, text="a")
    client = stack(cache=False)

    responses = [client.get(OTHER) for _ in range(3)]

    assert all(ROUTE in r.request.extensions for r in responses)


def test_a_plugin_subscriber_of_another_api_keeps_the_light_paths(
    stack: Callable[..., Harness], router: respx.Router
) -> None:
    """The plugins installed here (The Odds API's history archive subscribes to its own
    profile's events only): an unprofiled GET and POST still skip the stack."""
    get = router.get(OTHER).respond(200, text="a")
    router.post(OTHER).respond(201)
    client = stack(plugins=True)

    gets = [client.get(OTHER) for _ in range(3)]
    posts = [client.request("POST", OTHER) for _ in range(3)]

    assert get.call_count == 3
    assert [ROUTE in r.request.extensions for r in gets] == [True, False, False]
    assert info(posts[-1]).reason == BARE
