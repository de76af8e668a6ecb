"""``quotaflow explain URL``: what quotaflow would do with a request, and why, without
sending it. Strictly private."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import attrs
import httpx

from ._plan import _PARTS, plan
from ._profiles import DEFAULT_PROFILE, ApiProfile
from ._rules import CacheRules


@attrs.frozen
class Explanation:
    """What a GET of ``url`` would meet now. Strictly private."""

    url: str
    profile: str
    hosts: tuple[str, ...]
    credentials: str
    url_rule: str | None
    freshness: str
    max_stale: float
    cost: int
    quota: str
    rates: str
    would: str


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:g} s"


def _freshness(profile: ApiProfile, rules: CacheRules) -> str:
    parts = []
    if profile.freshness is not None:
        parts.append(f"rule {type(profile.freshness).__name__}")
    parts.append("else the answer's Cache-Control/Expires")
    default = profile.default_ttl if profile.default_ttl is not None else rules.default_ttl
    parts.append(
        f"else default_ttl {_seconds(default)}"
        if default is not None
        else "else not stored (no default_ttl)"
    )
    return ", ".join(parts)


def _outlook(profile: ApiProfile, result: Any, row: Any, rule: Any) -> tuple[str, str]:
    """The quota as last known, and what a GET would do now."""
    (left,) = result.remaining.values() if len(result.remaining) == 1 else (None,)
    quota = "-"
    if profile.quota is not None:
        quota = (
            f"{profile.quota.limit} a {profile.quota.period} (learnt from the API's "
            f"headers), {'?' if left is None else left} left"
        )
    if rule is not None and rule.ttl is None:
        would = f"go upstream, unstored (URL rule), cost {row.cost}"
    elif row.fresh:
        would = "be answered from the cache, fresh: nothing sent, cost 0"
    elif result.fits:
        would = f"go upstream, cost {row.cost}"
    else:
        would = (
            f"be refused (cost {row.cost} would spend into the {result.priority} reserve),"
            " or answered stale within max_stale"
        )
    return quota, would


def explain(client: httpx.Client, url: str, *, priority: str | None = None) -> Explanation:
    """Explain a GET of ``url`` on a client built by quotaflow; send nothing."""
    parts = _PARTS.get(client)
    if parts is None:
        raise TypeError("explain() needs a client built by quotaflow.make_client()")
    request = client.build_request("GET", url)
    if request.url.username or request.url.password:
        # As httpx does when it sends: URL userinfo becomes Basic credentials.
        auth = httpx.BasicAuth(request.url.username, request.url.password)
        request = next(auth.sync_auth_flow(request))
    call = parts.router.start(request)
    profile = call.profile
    result = plan(client, [request], priority=priority)
    row = result.requests[0]
    rules: CacheRules = parts.policy.rules
    rule = rules.match(call.inner_url)
    if rule is None:
        url_rule = None
    else:
        url_rule = f"{rule.pattern} -> " + ("no-store" if rule.ttl is None else f"{rule.ttl:g} s")
    if parts.router.route(call.url).shared:
        credentials = "answers shared by every credential (shared_answers)"
    elif call.account is not None:
        credentials = f"partitioned: this credential's own answers (account #{call.account})"
    else:
        credentials = "no credential: answers fetched without one"
    quota, would = _outlook(profile, result, row, rule)
    return Explanation(
        url=row.url,
        profile=profile.name,
        hosts=profile.hosts if profile is not DEFAULT_PROFILE else (),
        credentials=credentials,
        url_rule=url_rule,
        freshness=_freshness(profile, rules),
        max_stale=profile.max_stale,
        cost=row.cost,
        quota=quota,
        rates=", ".join(f"{r.limit} per {r.per:g} s" for r in profile.rates) or "-",
        would=would,
    )


def run(args: argparse.Namespace) -> int:
    from ._client import make_client
    from .exceptions import ConfigError, StateUnavailable

    try:
        with make_client(
            state_dir=args.state_dir, redis_url=args.redis_url, redis_prefix=args.redis_prefix
        ) as client:
            found = explain(client, args.url, priority=args.priority)
    except (ConfigError, ValueError, httpx.InvalidURL) as exc:
        print(f"quotaflow explain: {exc}", file=sys.stderr)
        return 2
    except StateUnavailable as exc:
        print(f"quotaflow explain: {exc}", file=sys.stderr)
        return 1
    fields: dict[str, Any] = attrs.asdict(found)
    if args.json:
        print(json.dumps(fields, indent=2))
        return 0
    fields["hosts"] = ", ".join(found.hosts) or "(any host no profile matches)"
    fields["url_rule"] = found.url_rule or "-"
    fields["max_stale"] = _seconds(found.max_stale)
    for name, value in fields.items():
        print(f"{name.replace('_', ' '):<12} {value}")
    return 0
