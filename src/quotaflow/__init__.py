"""quotaflow: httpx middleware for quota-limited APIs."""

from __future__ import annotations

import typing as _typing

from ._client import make_async_client, make_client
from ._clock import Clock
from ._info import CacheStatus, ResponseInfo
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


def __getattr__(name: str) -> _typing.Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("quotaflow")
    raise AttributeError(f"module 'quotaflow' has no attribute {name!r}")
