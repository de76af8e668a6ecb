"""A profile's hooks (cost, quota and window readings, classify) called so that a
plugin's bug costs a warning and a default, never the request. Strictly private."""

from __future__ import annotations

import logging

import httpx

from .._profiles import ApiProfile, QuotaReading, Verdict, WindowReading

logger = logging.getLogger("quotaflow")


def guarded_cost(profile: ApiProfile, request: httpx.Request) -> int:
    try:
        cost = profile.cost(request)
    except Exception:
        logger.warning("profile %s: cost() failed, counting 1 unit", profile.name, exc_info=True)
        return 1
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
        logger.warning("profile %s: cost() returned %r, counting 1 unit", profile.name, cost)
        return 1
    return cost


def unread_warning(profile: ApiProfile, rule: str) -> None:
    logger.warning(
        "profile %s: %s reads the body, which is only read for profiles with"
        " reads_body=True (and bodies within max_body); taking the headers alone",
        profile.name,
        rule,
    )


def guarded_reading(profile: ApiProfile, response: httpx.Response) -> QuotaReading:
    try:
        reading = profile.read_quota(response)
    except httpx.ResponseNotRead:
        unread_warning(profile, "read_quota")
        return QuotaReading()
    except Exception:
        logger.warning("profile %s: read_quota() failed, ignoring it", profile.name, exc_info=True)
        return QuotaReading()
    return reading if isinstance(reading, QuotaReading) else QuotaReading()


def guarded_window(profile: ApiProfile, response: httpx.Response) -> WindowReading | None:
    if profile.read_window is None:
        return None
    try:
        reading = profile.read_window(response)
    except Exception:
        logger.warning("profile %s: read_window() failed, ignoring it", profile.name, exc_info=True)
        return None
    return reading if isinstance(reading, WindowReading) else None


def guarded_verdict(profile: ApiProfile, response: httpx.Response) -> Verdict:
    try:
        verdict = profile.classify(response)
    except httpx.ResponseNotRead:
        unread_warning(profile, "classify")
        return "ok"
    except Exception:
        logger.warning(
            "profile %s: classify() failed, taking the status", profile.name, exc_info=True
        )
        return "ok"
    return verdict if verdict in ("ok", "error", "quota_exhausted") else "ok"
