"""API-Sports (API-Football v3) for quotaflow: ``PROFILE`` is the ``apisports`` plugin."""

from ._profile import (
    HOST,
    PROFILE,
    ApiSportsFreshness,
    ApiSportsImmutable,
    classify,
    make_profile,
    read_quota,
    read_window,
    readers,
)

__all__ = [
    "HOST",
    "PROFILE",
    "ApiSportsFreshness",
    "ApiSportsImmutable",
    "classify",
    "make_profile",
    "read_quota",
    "read_window",
    "readers",
]
