"""The Odds API v4 for quotaflow: ``PROFILE`` is published as the ``theoddsapi`` plugin.

:class:`OddsApi` (and :class:`AsyncOddsApi`) is a small typed client of the API that
works with any ``httpx.Client``, quotaflow's or not.
"""

from ._client import (
    AsyncOddsApi,
    Bookmaker,
    Event,
    EventScore,
    Market,
    OddsApi,
    OddsApiError,
    Outcome,
    Score,
    Sport,
    Usage,
)
from ._profile import PROFILE, OddsApiFreshness, classify, cost, read_quota

__all__ = [
    "PROFILE",
    "AsyncOddsApi",
    "Bookmaker",
    "Event",
    "EventScore",
    "Market",
    "OddsApi",
    "OddsApiError",
    "OddsApiFreshness",
    "Outcome",
    "Score",
    "Sport",
    "Usage",
    "classify",
    "cost",
    "read_quota",
]
