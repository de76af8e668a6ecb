"""The stack's events reach subscribers: one per request, plus quota, circuit and failures."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable

import httpx
import pytest
import respx

import quotaflow
from quotaflow import Quota, events

from .conftest import BASE, Harness, api_profile, info

URL = f"{BASE}/odds"


@pytest.fixture
def seen() -> list[events.Event]:
    return []


def test_one_served_event_per_request(stack, router, traveller, seen) -> None:
    """Fetched, Hit, Stale and Refused, each with the request's redacted resource."""
    route = router.get(url__startswith=URL).respond(200, json={"v": 1}, headers={"x-cost": "2"})
    client = stack(
        profiles=[api_profile(quota=Quota(10), cost=lambda request: 2)], subscribers=[seen.append]
    )
    client.get(URL, params={"key": "SECRET"})
    client.get(URL, params={"key": "SECRET"})
    traveller.shift(61)
    route.mock(side_effect=httpx.ConnectError("down"))
    client.get(URL, params={"key": "SECRET"})
    route.mock(side_effect=None, return_value=httpx.Response(200, json={}))
    for n in range(3):  # 8 of 10 left, 2 a call, 2 kept back: three more fit
        client.get(f"{URL}/{n}", params={"key": "SECRET"})
    with pytest.raises(quotaflow.QuotaExhausted):
        client.get(f"{URL}/refused", params={"key": "SECRET"})

    served = [e for e in seen if isinstance(e, events.Served)]
    kinds = [type(e).__name__ for e in served]
    assert kinds[:3] == ["Fetched", "Hit", "Stale"]
    assert kinds[-1] == "Refused"
    fetched, hit, stale, refused = served[0], served[1], served[2], served[-1]
    assert fetched.resource == URL
    assert "SECRET" not in repr(seen)
    assert (fetched.status, fetched.cost, fetched.ttl, fetched.content) == (200, 2, 60, b'{"v":1}')
    assert hit.saved == 2
    assert (stale.reason, stale.age) == ("network", 61)
    assert (refused.reason, refused.priority) == ("quota", "normal")
    assert [e.remaining for e in seen if isinstance(e, events.QuotaChanged)][:1] == [8]
    failures = [e for e in seen if isinstance(e, events.UpstreamFailed)]
    assert [(f.resource, f.detail) for f in failures] == [(URL, "ConnectError")]


def test_served_events_carry_priority_and_waited(tmp_path, router, traveller) -> None:
    """Every event that ends a request names the request's priority and how long it
    waited for the short window, the hit built on the emitter's fast path too."""
    seen: list[events.Event] = []
    router.get(url__startswith=URL).respond(200, json={})

    def sleep(seconds: float) -> None:
        traveller.shift(seconds)

    profile = api_profile(rates=(quotaflow.Rate(1, per=10.0, burst=1),), quota=None)
    with quotaflow.make_client(
        profiles=[profile],
        plugins=False,
        state_dir=tmp_path,
        transport=httpx.MockTransport(router.handler),
        clock=quotaflow.Clock(sleep=sleep),
        subscribers=[seen.append],
    ) as client:
        client.get(f"{URL}/a", extensions={"priority": "critical"})
        client.get(f"{URL}/a", extensions={"priority": "high"})  # a hit
        client.get(f"{URL}/b", extensions={"priority": "critical"})  # waits for the window

    served = [
        (type(e).__name__, e.priority, e.waited) for e in seen if isinstance(e, events.Served)
    ]
    assert served[:2] == [("Fetched", "critical", 0.0), ("Hit", "high", 0.0)]
    name, priority, waited = served[2]
    assert (name, priority) == ("Fetched", "critical")
    assert waited == pytest.approx(10.0, abs=0.01)


def test_circuit_events(stack, router, traveller, seen) -> None:
    """The breaker says when it opens and closes."""
    route = router.get(url__startswith=BASE).mock(side_effect=httpx.ConnectError("down"))
    client = stack(
        profiles=[api_profile(breaker_threshold=2, breaker_cooldown=5)], subscribers=[seen.append]
    )
    for n in range(2):
        with pytest.raises(httpx.ConnectError):
            client.get(f"{BASE}/{n}")
    traveller.shift(5)
    route.mock(side_effect=None, return_value=httpx.Response(200, json={}))
    client.get(f"{BASE}/probe")

    assert [e.state for e in seen if isinstance(e, events.CircuitChanged)] == ["open", "closed"]


def test_a_failing_subscriber_never_reaches_the_request(stack, router, caplog, seen) -> None:
    """Its exception is logged; other subscribers still run; the request succeeds."""

    def broken(event: events.Event) -> None:
        raise RuntimeError("subscriber bug")

    router.get(URL).respond(200, json={})
    client = stack(subscribers=[broken, seen.append])

    response = client.get(URL)

    assert response.status_code == 200
    assert any(isinstance(e, events.Fetched) for e in seen)
    assert "subscriber bug" in caplog.text


def test_plugins_subscribe_through_their_entry_point(tmp_path, monkeypatch, router) -> None:
    """A Plugin published under quotaflow.plugins brings its profiles and subscribers."""
    (tmp_path / "qf_events_plugin.py").write_text(
        textwrap.dedent(
            """
            import quotaflow
            SEEN = []
            PLUGIN = quotaflow.Plugin(
                name="recorder",
                profiles=[quotaflow.ApiProfile(name="rec", hosts=("rec.test",))],
                subscribers=[SEEN.append],
            )
            """
        )
    )
    dist = tmp_path / "qf_events_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: qf-events-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[quotaflow.plugins]\nrecorder = qf_events_plugin:PLUGIN\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    router.get("https://rec.test/x").respond(200, json={})

    with quotaflow.make_client(
        state_dir=tmp_path / "state", transport=httpx.MockTransport(router.handler)
    ) as client:
        response = client.get("https://rec.test/x")

    plugin = sys.modules["qf_events_plugin"]
    assert info(response).profile == "rec"
    assert [type(e).__name__ for e in plugin.SEEN if isinstance(e, events.Served)] == ["Fetched"]


def test_subscribers_are_closed_with_the_client(stack) -> None:
    """A subscriber with close() gets to flush when the client closes."""

    class Batching:
        closed = False

        def __call__(self, event: events.Event) -> None:
            pass

        def close(self) -> None:
            self.closed = True

    batching = Batching()
    client = stack(subscribers=[batching])
    client.close()

    assert batching.closed


def test_bad_subscribers_are_refused(tmp_path) -> None:
    """subscribers must be callables."""
    with pytest.raises(quotaflow.ConfigError, match="subscribers"):
        quotaflow.make_client(plugins=False, state_dir=tmp_path, subscribers=["not callable"])


def test_plugins_are_discovered_once_per_process(tmp_path, monkeypatch) -> None:
    """Building a client does not rescan every installed distribution each time."""
    from quotaflow import _plugins as _profiles

    scans: list[str] = []
    original = _profiles.entry_points

    def counting(**kwargs: str):  # type: ignore[no-untyped-def]
        scans.append(kwargs["group"])
        return original(**kwargs)

    monkeypatch.setattr(_profiles, "entry_points", counting)
    monkeypatch.setattr(_profiles, "_SCANNED", {})
    for n in range(3):
        quotaflow.make_client(state_dir=tmp_path / f"s{n}", config=False).close()

    assert scans == ["quotaflow.plugins"]


def test_a_subscriber_naming_its_profiles_gets_only_their_events(
    stack: Callable[..., Harness], router: respx.Router
) -> None:
    """``profiles`` on a subscriber: the events of those profiles reach it, others' do not;
    a subscriber without one (or with something that is not a collection of names) gets
    every event."""
    router.get(url__startswith=BASE).respond(200, json={})
    router.get("https://example.org/x").respond(200, text="x")

    class Only(list[events.Event]):
        def __init__(self, profiles: object) -> None:
            super().__init__()
            self.profiles = profiles

        def __call__(self, event: events.Event) -> None:
            self.append(event)

    api, other, odd = Only({"api"}), Only(frozenset({"default"})), Only("api")
    everything: list[events.Event] = []
    client = stack(subscribers=[api, other, odd, everything.append])

    client.get(f"{BASE}/odds")
    client.get("https://example.org/x")

    assert {e.profile for e in api} == {"api"}
    assert {e.profile for e in other} == {"default"}
    assert {e.profile for e in odd} == {e.profile for e in everything} == {"api", "default"}
