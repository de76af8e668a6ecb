"""Each hit says why it is one: the ResponseInfo kept per URL for hits (built once, as
hits share it) is kept per reason too."""

from __future__ import annotations

from collections.abc import Callable

import respx

from .conftest import Harness, info

URL = "https://example.org/things"


def test_a_304_to_the_callers_validator_and_a_plain_hit_give_their_own_reasons(
    stack: Callable[..., Harness], router: respx.Router
) -> None:
    route = router.get(URL).respond(
        200, text="v", headers={"cache-control": "max-age=600", "etag": '"v1"'}
    )
    client = stack(hot_entries=0)  # both from storage

    client.get(URL)
    plain = client.get(URL)
    validated = client.get(URL, headers={"if-none-match": '"v1"'})
    again = client.get(URL)

    assert route.call_count == 1
    assert validated.status_code == 304
    assert (info(plain).cache, info(validated).cache) == ("hit", "hit")
    assert info(plain).reason == info(again).reason == "fresh in storage"
    assert info(validated).reason == (
        "304 from a fresh stored answer: the caller's validator matched"
    )
