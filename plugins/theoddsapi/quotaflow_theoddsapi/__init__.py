"""The Odds API v4 for quotaflow: ``PROFILE`` is published as the ``theoddsapi`` plugin."""

from ._profile import PROFILE, OddsApiFreshness, classify, cost, read_quota

__all__ = ["PROFILE", "OddsApiFreshness", "classify", "cost", "read_quota"]
