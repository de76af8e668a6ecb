"""Metrics for monitoring systems, both optional (``pip install 'quotaflow[metrics]'``):

- :class:`OpenTelemetryMetrics`, an event subscriber (``make_client(subscribers=[...])``)
  that counts requests, cache hits, upstream calls, credits spent and limiter waits, and
  reports the remaining quota, by profile and priority, through ``opentelemetry-api``
  (the application's meter provider decides where they go);
- :func:`prometheus_text`, what the dashboard serves at ``/metrics``: the status of
  every profile (``quotaflow status --json``) in Prometheus' text format, made with
  ``prometheus-client``.

Neither package is imported before it is used; without it, the ImportError names the
extra to install. Strictly private (re-exported where the public surface says).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from . import events
from ._priority import current_priority
from ._status import ProfileStatus

__all__ = ["PROMETHEUS_CONTENT_TYPE", "OpenTelemetryMetrics", "prometheus_text"]

INSTALL = "pip install 'quotaflow[metrics]'"
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OUTCOMES = ("hits", "misses", "revalidated", "stale", "refused")


def _optional(module: str, package: str) -> Any:
    """``module`` of an optional extra, imported by name (so the type check passes with
    or without it installed); without it, an ImportError that names the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"quotaflow's metrics need {package}: {INSTALL}") from exc


# What each event that ends a request counts as (``quotaflow.outcome``).
_OUTCOME = {
    events.Hit: "hit",
    events.Fetched: "miss",
    events.Revalidated: "revalidated",
    events.Stale: "stale",
    events.Refused: "refused",
}


class OpenTelemetryMetrics:
    """An event subscriber that records quotaflow's work as OpenTelemetry metrics.

    Instruments (attributes ``quotaflow.profile`` and ``quotaflow.priority``):
    ``quotaflow.requests`` (also ``quotaflow.outcome``: hit, miss, revalidated, stale,
    refused), ``quotaflow.cache.hits``, ``quotaflow.upstream.calls`` (also
    ``quotaflow.result``: ok or failed), ``quotaflow.credits.spent``,
    ``quotaflow.wait`` (seconds waited for the limiter, a histogram, from events that
    carry ``waited``) and ``quotaflow.quota.remaining`` (an observable gauge: the
    remaining quota as last known, by profile).

    The priority is the event's own (request events carry the request's); other events
    (failed attempts, quota changes) take the one in force where they were emitted
    (:func:`quotaflow.priority`).

    Args:
        meter: where to record; default ``opentelemetry.metrics.get_meter("quotaflow")``.

    Raises:
        ImportError: ``opentelemetry-api`` is not installed (names the extra).
    """

    def __init__(self, meter: Any = None) -> None:
        metrics = _optional("opentelemetry.metrics", "opentelemetry-api")
        self._observation = metrics.Observation
        from ._version import __version__

        meter = meter if meter is not None else metrics.get_meter("quotaflow", __version__)
        self._requests = meter.create_counter(
            "quotaflow.requests", unit="{request}", description="requests answered or refused"
        )
        self._hits = meter.create_counter(
            "quotaflow.cache.hits", unit="{request}", description="answers from the cache"
        )
        self._upstream = meter.create_counter(
            "quotaflow.upstream.calls", unit="{call}", description="attempts sent upstream"
        )
        self._spent = meter.create_counter(
            "quotaflow.credits.spent", unit="{credit}", description="quota units spent upstream"
        )
        self._wait = meter.create_histogram(
            "quotaflow.wait", unit="s", description="time waited for the limiter"
        )
        self._lock = threading.Lock()
        self._remaining: dict[str, int] = {}
        meter.create_observable_gauge(
            "quotaflow.quota.remaining",
            callbacks=[self._observe],
            unit="{credit}",
            description="the remaining quota, as last known",
        )

    def _observe(self, options: Any) -> Iterator[Any]:
        with self._lock:
            known = dict(self._remaining)
        for profile, remaining in known.items():
            yield self._observation(remaining, {"quotaflow.profile": profile})

    @staticmethod
    def _attributes(event: events.Event) -> dict[str, str]:
        priority = getattr(event, "priority", None) or current_priority()
        return {"quotaflow.profile": event.profile, "quotaflow.priority": str(priority)}

    def served_hit(
        self, profile: str, at: float, resource: str, saved: int, priority: str, waited: float
    ) -> None:
        """A cache hit, counted without an event (the emitter's fast path)."""
        attributes = {"quotaflow.profile": profile, "quotaflow.priority": priority}
        self._hits.add(1, attributes)
        self._requests.add(1, {**attributes, "quotaflow.outcome": "hit"})
        if waited:
            self._wait.record(waited, attributes)

    def __call__(self, event: events.Event) -> None:
        attributes = self._attributes(event)
        outcome = next((name for kind, name in _OUTCOME.items() if isinstance(event, kind)), None)
        if outcome is not None:
            self._requests.add(1, {**attributes, "quotaflow.outcome": outcome})
        if isinstance(event, events.Hit):
            self._hits.add(1, attributes)
        elif isinstance(event, events.Fetched | events.Revalidated):
            self._upstream.add(1, {**attributes, "quotaflow.result": "ok"})
            if event.cost:
                self._spent.add(event.cost, attributes)
        elif isinstance(event, events.UpstreamFailed):
            self._upstream.add(1, {**attributes, "quotaflow.result": "failed"})
        elif (
            isinstance(event, events.QuotaChanged | events.QuotaLow) and event.remaining is not None
        ):
            with self._lock:
                self._remaining[event.profile] = event.remaining
        waited = getattr(event, "waited", None)
        if waited:
            self._wait.record(waited, attributes)


def _families(statuses: Iterable[ProfileStatus]) -> list[Any]:
    core = _optional("prometheus_client.core", "prometheus-client")

    def gauge(name: str, text: str, labels: tuple[str, ...] = ()) -> Any:
        return core.GaugeMetricFamily(f"quotaflow_{name}", text, labels=["profile", *labels])

    quota = {
        "total": gauge("quota_total", "quota units this period"),
        "used": gauge("quota_used", "quota units used this period"),
        "remaining": gauge("quota_remaining", "quota units left this period"),
        "forecast_at_reset": gauge(
            "quota_forecast_at_reset", "units left at the reset at the rate so far"
        ),
        "tokens": gauge("tokens", "requests the short-window rate would admit now"),
        "failures": gauge("upstream_failures_in_a_row", "upstream failures in a row"),
    }
    today = gauge("requests_today", "today's requests by outcome (UTC day)", ("outcome",))
    units = gauge("units_today", "today's quota units spent and saved (UTC day)", ("kind",))
    circuit = gauge("circuit_open", "1 while the circuit is open or half-open")
    paused = gauge("paused", "1 while the API asked everyone to hold off")
    for status in statuses:
        for field, family in quota.items():
            value = getattr(status, field)
            if value is not None:
                family.add_metric([status.profile], value)
        for outcome in OUTCOMES:
            today.add_metric([status.profile, outcome], status.today.get(outcome, 0))
        for kind in ("spent", "saved"):
            units.add_metric([status.profile, kind], status.today.get(kind, 0))
        circuit.add_metric([status.profile], 0 if status.circuit == "closed" else 1)
        paused.add_metric([status.profile], 1 if status.paused else 0)
    return [*quota.values(), today, units, circuit, paused]


def prometheus_text(statuses: Iterable[ProfileStatus]) -> bytes:
    """The statuses as Prometheus gauges (text exposition format 0.0.4).

    Raises:
        ImportError: ``prometheus-client`` is not installed (names the extra).
    """
    prometheus = _optional("prometheus_client", "prometheus-client")

    class _Collector:
        def __init__(self, families: list[Any]) -> None:
            self.families = families

        def collect(self) -> Iterator[Any]:
            yield from self.families

    registry = prometheus.CollectorRegistry(auto_describe=False)
    registry.register(_Collector(_families(statuses)))
    text: bytes = prometheus.generate_latest(registry)
    return text
