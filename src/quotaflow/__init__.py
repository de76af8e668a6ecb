"""quotaflow: httpx middleware for quota-limited APIs."""

from __future__ import annotations

import typing as _typing

# Everything but the exceptions is imported when first used (PEP 562): ``import quotaflow``
# costs little more than ``import httpx`` (issue 16); hishel, pyrate-limiter, Redis, the
# CLI, the dashboard and the plugins load with the first client.
if _typing.TYPE_CHECKING:
    from ._client import make_async_client, make_client
    from ._clock import Clock
    from ._info import CacheStatus, ResponseInfo
    from ._metrics import OpenTelemetryMetrics
    from ._plan import Plan, PlannedRequest, aplan, plan
    from ._plugins import Plugin
    from ._priority import Priority, priority
    from ._profiles import (
        ApiProfile,
        Quota,
        QuotaHeaders,
        QuotaReading,
        Rate,
        Verdict,
        WindowHeaders,
        WindowReading,
        parse_duration,
    )
    from ._snapshots import Snapshot

from .exceptions import (
    CircuitOpen,
    ConfigError,
    QuotaExhausted,
    QuotaflowError,
    RateLimited,
    RequestRefused,
    StateUnavailable,
)

__all__ = [
    "ApiProfile",
    "CacheStatus",
    "CircuitOpen",
    "Clock",
    "ConfigError",
    "OpenTelemetryMetrics",
    "Plan",
    "PlannedRequest",
    "Plugin",
    "Priority",
    "Quota",
    "QuotaExhausted",
    "QuotaHeaders",
    "QuotaReading",
    "QuotaflowError",
    "Rate",
    "RateLimited",
    "RequestRefused",
    "ResponseInfo",
    "Snapshot",
    "StateUnavailable",
    "Verdict",
    "WindowHeaders",
    "WindowReading",
    "aplan",
    "make_async_client",
    "make_client",
    "parse_duration",
    "plan",
    "priority",
]


# Where each lazily imported name lives.
_LAZY = {
    "ApiProfile": "_profiles",
    "CacheStatus": "_info",
    "Clock": "_clock",
    "OpenTelemetryMetrics": "_metrics",
    "Plan": "_plan",
    "PlannedRequest": "_plan",
    "Plugin": "_plugins",
    "Priority": "_priority",
    "Quota": "_profiles",
    "QuotaHeaders": "_profiles",
    "QuotaReading": "_profiles",
    "Rate": "_profiles",
    "ResponseInfo": "_info",
    "Snapshot": "_snapshots",
    "Verdict": "_profiles",
    "WindowHeaders": "_profiles",
    "WindowReading": "_profiles",
    "aplan": "_plan",
    "make_async_client": "_client",
    "make_client": "_client",
    "parse_duration": "_profiles",
    "plan": "_plan",
    "priority": "_priority",
}


def __getattr__(name: str) -> _typing.Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("quotaflow")
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'quotaflow' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{where}"), name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
