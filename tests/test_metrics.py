"""Metrics (issue 14): OpenTelemetry from the events, Prometheus on the dashboard.

Both need the ``metrics`` extra (and the OpenTelemetry SDK to read what was recorded);
without them these tests are skipped, and the code says what to install.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import quotaflow
from quotaflow import Quota, _cli_status, _dashboard, _metrics

from .conftest import BASE, api_profile, info
from .test_dashboard import build_traffic

HEADERS = {"x-cost": "1"}


@pytest.fixture
def reader() -> Any:
    pytest.importorskip("opentelemetry.metrics")
    sdk = pytest.importorskip("opentelemetry.sdk.metrics")
    export = pytest.importorskip("opentelemetry.sdk.metrics.export")
    reader = export.InMemoryMetricReader()
    reader.provider = sdk.MeterProvider(metric_readers=[reader])
    return reader


def points(reader: Any) -> dict[str, dict[tuple[tuple[str, Any], ...], Any]]:
    """Every data point by instrument name and sorted attributes."""
    found: dict[str, dict[tuple[tuple[str, Any], ...], Any]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    key = tuple(sorted(point.attributes.items()))
                    value = getattr(point, "value", None)
                    if value is None:  # a histogram
                        value = (point.count, point.sum)
                    found.setdefault(metric.name, {})[key] = value
    return found


def key(priority: str, **more: str) -> tuple[tuple[str, Any], ...]:
    attributes = {"quotaflow.profile": "api", "quotaflow.priority": priority}
    attributes.update({f"quotaflow.{k}": v for k, v in more.items()})
    return tuple(sorted(attributes.items()))


# Priority from the context (with quotaflow.priority(...)) is seen on the request's
# thread: the sync client runs subscribers there.
@pytest.mark.parametrize("stack", ["sync"], indirect=True)
def test_opentelemetry_counts_what_happened(stack, router, reader) -> None:
    """Requests by outcome and priority, hits, upstream calls, credits spent and the
    remaining quota, against the upstream calls the router saw and what the responses
    say."""
    meter = reader.provider.get_meter("test")
    metrics = _metrics.OpenTelemetryMetrics(meter)
    route = router.get(url__startswith=f"{BASE}/").respond(
        200, json={}, headers={**HEADERS, "x-remaining": "4", "x-used": "6"}
    )
    profile = api_profile(quota=Quota(10), cost=lambda request: 1)
    client = stack(profiles=[profile], subscribers=[metrics])
    with quotaflow.priority("high"):
        spent = [info(client.get(f"{BASE}/a")).cost, info(client.get(f"{BASE}/a")).cost]
    spent.append(info(client.get(f"{BASE}/b")).cost)
    route.respond(200, json={}, headers={**HEADERS, "x-remaining": "0", "x-used": "10"})
    spent.append(info(client.get(f"{BASE}/c")).cost)
    with pytest.raises(quotaflow.QuotaExhausted):
        client.get(f"{BASE}/d", extensions={"priority": "low"})
    client.close()

    found = points(reader)
    assert found["quotaflow.requests"] == {
        key("high", outcome="miss"): 1,
        key("high", outcome="hit"): 1,
        key("normal", outcome="miss"): 2,
        key("low", outcome="refused"): 1,  # the refusal carries its own priority
    }
    assert found["quotaflow.cache.hits"] == {key("high"): 1}
    assert sum(found["quotaflow.upstream.calls"].values()) == route.call_count == 3
    assert sum(found["quotaflow.credits.spent"].values()) == sum(spent) == 3
    assert found["quotaflow.quota.remaining"] == {(("quotaflow.profile", "api"),): 0}


def test_opentelemetry_records_waits_and_failures(reader) -> None:
    """Events that carry ``waited`` feed the wait histogram; failed attempts count as
    upstream calls that failed."""
    from quotaflow import events

    metrics = _metrics.OpenTelemetryMetrics(reader.provider.get_meter("test"))
    metrics(events.UpstreamFailed("api", 1.0, f"{BASE}/a", "ConnectError"))
    metrics(events.Fetched("api", 1.0, f"{BASE}/a", 200, 2, 60.0, b"{}", waited=1.5))
    found = points(reader)
    assert found["quotaflow.upstream.calls"] == {
        key("normal", result="failed"): 1,
        key("normal", result="ok"): 1,
    }
    assert found["quotaflow.credits.spent"] == {key("normal"): 2}
    assert found["quotaflow.requests"] == {key("normal", outcome="miss"): 1}
    assert found["quotaflow.wait"] == {key("normal"): (1, 1.5)}


def test_opentelemetry_labels_by_the_events_priority(reader) -> None:
    """The event's own priority labels it, not the one in force where it is handled
    (an async client's subscriber, a queue drained elsewhere)."""
    from quotaflow import events

    metrics = _metrics.OpenTelemetryMetrics(reader.provider.get_meter("test"))
    with quotaflow.priority("low"):
        metrics(events.Fetched("api", 1.0, f"{BASE}/a", 200, 1, 60.0, b"{}", priority="critical"))
        metrics.served_hit("api", 1.0, f"{BASE}/a", 1, "high", 0.25)
    found = points(reader)
    assert found["quotaflow.requests"] == {
        key("critical", outcome="miss"): 1,
        key("high", outcome="hit"): 1,
    }
    assert found["quotaflow.wait"] == {key("high"): (1, 0.25)}


def test_without_the_extra_the_error_names_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.metrics", None)
    with pytest.raises(ImportError, match=r"pip install 'quotaflow\[metrics\]'"):
        _metrics.OpenTelemetryMetrics()
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match=r"needs? prometheus-client"):
        _metrics.prometheus_text([])


@pytest.fixture
def served(stack, router, traveller, tmp_path) -> Iterator[tuple[str, list[Any]]]:
    profile, state = build_traffic(stack, router, traveller, tmp_path)
    server, thread = _dashboard.serve(state, "127.0.0.1", 0, profiles=[profile], refresh=0)
    try:
        yield _dashboard.url_of(server), _cli_status.collect(state, None, "quotaflow", [profile])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("stack", ["sync"], indirect=True)
def test_prometheus_metrics_on_the_dashboard(served) -> None:
    """/metrics says what status.json says, in Prometheus' text format."""
    parser = pytest.importorskip("prometheus_client.parser")
    url, statuses = served
    with urllib.request.urlopen(url + "metrics", timeout=5) as response:
        kind = response.headers["Content-Type"]
        text = response.read().decode()
    assert kind.startswith("text/plain; version=0.0.4")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in parser.text_string_to_metric_families(text)
        for sample in family.samples
    }
    (status,) = [s for s in statuses if s.profile == "api"]
    api = (("profile", "api"),)
    assert samples[("quotaflow_quota_remaining", api)] == status.remaining == 4
    assert samples[("quotaflow_quota_used", api)] == status.used == 12
    assert samples[("quotaflow_quota_total", api)] == status.total == 16
    for outcome in ("hits", "misses", "revalidated", "stale", "refused"):
        labels = (("outcome", outcome), ("profile", "api"))
        assert samples[("quotaflow_requests_today", labels)] == status.today[outcome]
    spent = (("kind", "spent"), ("profile", "api"))
    assert samples[("quotaflow_units_today", spent)] == status.today["spent"] == 6
    assert samples[("quotaflow_circuit_open", api)] == 0


@pytest.mark.parametrize("stack", ["sync"], indirect=True)
def test_metrics_without_prometheus_client_is_a_404_that_says_why(served, monkeypatch) -> None:
    url, _ = served
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(url + "metrics", timeout=5)
    assert missing.value.code == 404
    assert "pip install 'quotaflow[metrics]'" in missing.value.read().decode()
    missing.value.close()
