"""ESPN's site API for quotaflow: ``PROFILE`` is published as the ``espn`` plugin."""

from ._profile import PROFILE, EspnFreshness, EspnImmutable

__all__ = ["PROFILE", "EspnFreshness", "EspnImmutable"]
