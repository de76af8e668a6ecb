"""Profile defaults: reserves, waits, alerts, secret names. Strictly private."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, TypeAlias

from ._priority import Priority

#: What a response means to quotaflow, as a profile's ``classify`` tells it:
#: ``"ok"``; ``"error"`` (an error, even one dressed as a 200: never stored, eligible
#: for fallback); ``"quota_exhausted"`` (the API says the quota is gone).
Verdict: TypeAlias = Literal["ok", "error", "quota_exhausted"]

ENTRY_POINT_GROUP = "quotaflow.plugins"

DEFAULT_RESERVES: Mapping[Priority, float] = {
    Priority.CRITICAL: 0.0,
    Priority.HIGH: 0.05,
    Priority.NORMAL: 0.2,
    Priority.LOW: 0.5,
}
DEFAULT_MAX_WAIT: Mapping[Priority, float] = {
    Priority.CRITICAL: 30.0,
    Priority.HIGH: 10.0,
    Priority.NORMAL: 5.0,
    Priority.LOW: 0.0,
}
# Low-quota alerts: a share of the quota left (float) or units left (int).
DEFAULT_ALERTS: tuple[float, ...] = (0.10,)
# Credentials that never reach a cache key, the disk or a log, whatever the profile
# (requests-cache ignores the same ones by default).
# Names are matched in any casing. Each one a request carries also partitions the cache
# (see _credentials): a name that is no secret costs nothing but its redaction.
DEFAULT_SECRET_PARAMS = (
    "api_key",
    "apiKey",
    "apikey",
    "api-key",
    "access_token",
    "auth_token",
    "token",
    "key",
    "client_secret",
    "password",
    "signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
)
DEFAULT_SECRET_HEADERS = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "apikey",
    "x-apikey",
    "x-api-token",
    "x-auth-token",
    "x-access-token",
    "private-token",
    "x-goog-api-key",
    "x-rapidapi-key",
    "ocp-apim-subscription-key",
    "x-amz-security-token",
)
# Credentials that name the caller's session rather than its API key: they partition
# the cache, but are no quota account of their own.
SESSION_HEADERS = frozenset({"cookie", "proxy-authorization"})
# How long a stale answer with a validator is kept for a conditional request (seconds).
REVALIDATION_WINDOW = 86400.0
