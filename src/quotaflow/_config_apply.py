"""The configuration file applied: ``[profiles.NAME]`` changes and ``[apis.NAME]``
definitions, each checked by ApiProfile's own validators. Strictly private."""

import fnmatch
import re
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from typing import Any, cast

import attrs

from ._config import _PROFILE_FIELDS, Settings, _at
from ._priority import Priority
from ._profiles import ApiProfile, Quota, QuotaHeaders, Rate, parse_duration
from .exceptions import ConfigError

# What an [apis.NAME] table may set besides the profile fields above (freshness aside).
_API_FIELDS = (
    *(field for field in _PROFILE_FIELDS if field != "freshness"),
    "ttl",
    "cost",
    "headers",
    "windowless",
)
#: Entry-point group of quota-header conventions beyond the built-in ones: a callable
#: taking ``period`` (and the table's convention options) and returning ApiProfile
#: arguments (``read_quota``, ``read_window``).
HEADERS_GROUP = "quotaflow.headers"
_BUILT_IN_HEADERS = ("none", "x-requests")


@attrs.frozen
class FixedTtl:
    """The freshness rule of an ``[apis.NAME]`` table's ``ttl``: every successful
    answer stays fresh ``ttl`` seconds. Strictly private."""

    ttl: float

    def __call__(self, request: Any, response: Any, now: float) -> float | None:
        return self.ttl


@attrs.frozen
class PathCosts:
    """The cost rule of an ``[apis.NAME]`` table's ``cost``: a number of units per
    request, or a table of path globs to units, the first match winning (a path no
    glob matches costs 1). Strictly private."""

    costs: tuple[tuple[str, int], ...]

    def __call__(self, request: Any) -> int:
        path = request.url.path
        return next((cost for glob, cost in self.costs if fnmatch.fnmatchcase(path, glob)), 1)


def _costs(value: Any) -> PathCosts:
    pairs = value.items() if isinstance(value, dict) else [("*", value)]
    costs = []
    for glob, cost in pairs:
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
            raise ValueError(f"expected a whole number of units >= 0, not {cost!r}")
        if not isinstance(glob, str) or not glob.startswith(("/", "*")):
            raise ValueError(f"{glob!r} is not a path glob such as '/v1/odds/*'")
        costs.append((glob, cost))
    return PathCosts(tuple(costs))


def _convert(field: str, value: Any, profile: ApiProfile | None) -> Any:
    if field == "rates":
        items = value if isinstance(value, list) else [value]
        return tuple(Rate(**item) if isinstance(item, dict) else item for item in items)
    if field == "quota":
        return Quota(**value) if isinstance(value, dict) else value
    if field == "max_stale" and isinstance(value, dict) and profile is not None:
        # Per priority: the ones named change, the others keep the profile's limit
        # (an [apis.NAME] table has no profile before it: the mapping is all there is).
        return {**{p: profile.stale_limit(p) for p in Priority}, **value}
    if field == "freshness":
        rule = profile.freshness if profile is not None else None
        if not isinstance(value, dict) or rule is None or not attrs.has(type(rule)):
            raise ConfigError("this profile's freshness rule has no settings to change")
        return attrs.evolve(cast(Any, rule), **_rule_settings(rule, value))
    return value


def _rule_settings(rule: Any, value: dict[str, Any]) -> dict[str, Any]:
    """A freshness rule's new settings: where the rule holds a number of seconds, the
    new value must be a duration (a string such as ``"30s"`` would otherwise reach the
    rule, which returns it as its answer, and turn caching off)."""
    known = {field.name for field in attrs.fields(type(rule))}
    changes = {}
    for key, new in value.items():
        if key not in known:
            raise ConfigError(f"{key}: unknown setting (known: {', '.join(sorted(known))})")
        current = getattr(rule, key)
        if isinstance(current, int | float) and not isinstance(current, bool):
            try:
                new = parse_duration(new)
            except ValueError as exc:
                raise ConfigError(f"{key}: {exc.args[0]}") from None
        changes[key] = new
    return changes


def _header_line(text: str, table: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"^\s*\[([^\]]+)\]", line)
        if header and header.group(1).strip() == table:
            return number
    return None


def _headers(convention: Any, period: str, options: dict[str, Any]) -> dict[str, Any]:
    """The ApiProfile arguments that read a quota-header convention."""
    if convention == "none":
        if options:
            raise ConfigError(f"{next(iter(options))}: only for headers = 'ratelimit'")
        return {}
    if convention == "x-requests":
        if options:
            raise ConfigError(f"{next(iter(options))}: only for headers = 'ratelimit'")
        # The Odds API's convention (shared/APIS.md): credits left, used this period,
        # and what the last call cost.
        return {
            "read_quota": QuotaHeaders(
                remaining="x-requests-remaining", used="x-requests-used", last="x-requests-last"
            )
        }
    found = {point.name: point for point in entry_points(group=HEADERS_GROUP)}
    if not isinstance(convention, str) or convention not in found:
        known = ", ".join(repr(name) for name in (*_BUILT_IN_HEADERS, *sorted(found)))
        hint = "" if "ratelimit" in found else " ('ratelimit' needs quotaflow-ratelimit-headers)"
        raise ConfigError(f"headers: expected one of {known}, not {convention!r}{hint}")
    try:
        readers = found[convention].load()(period=period, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"headers = {convention!r}: {exc}") from None
    return dict(readers)


def _api(name: str, table_data: dict[str, Any], source: str, text: str) -> ApiProfile:
    """The profile an ``[apis.NAME]`` table defines."""
    table = f"apis.{name}"
    if "hosts" not in table_data:
        line = _header_line(text, table) if text else None
        where = f"{source}, line {line}" if line else source
        raise ConfigError(f"{where}: {table}.hosts: missing (required)")
    arguments: dict[str, Any] = {"name": name}
    options: dict[str, Any] = {}
    for field, value in table_data.items():
        where = _at(source, text, table, field)
        if field not in _API_FIELDS:
            known = ", ".join(_API_FIELDS)
            raise ConfigError(f"{where}: {table}.{field}: unknown setting (known: {known})")
        try:
            if field == "ttl":
                arguments["freshness"] = FixedTtl(parse_duration(value))
            elif field == "cost":
                arguments["cost"] = _costs(value)
            elif field == "windowless":
                options[field] = value
            elif field != "headers":
                arguments[field] = _convert(field, value, None)
        except (ConfigError, TypeError, ValueError) as exc:
            detail = exc.args[0] if exc.args else str(exc)
            raise ConfigError(f"{where}: {table}.{field}: {detail}") from None
    quota = arguments.get("quota")
    period = quota.period if isinstance(quota, Quota) else "day"
    try:
        arguments.update(_headers(table_data.get("headers", "none"), period, options))
    except ConfigError as exc:
        key = "headers" if "headers" in table_data else next(iter(options), "hosts")
        where = _at(source, text, table, key)
        raise ConfigError(f"{where}: {table}.{exc.args[0]}") from None
    try:
        return ApiProfile(**arguments)
    except ConfigError as exc:
        found = re.search(r"ApiProfile\.(\w+)", exc.args[0])
        where = _at(source, text, table, found.group(1)) if found else source
        raise ConfigError(f"{where}: {table}: {exc.args[0]}") from None


def apply_settings(settings: Settings, profiles: Iterable[ApiProfile]) -> list[ApiProfile]:
    """The profiles with the file's changes, each checked by ApiProfile's own validators,
    and the profiles its ``[apis.NAME]`` tables define."""
    by_name = {profile.name: profile for profile in profiles}
    source, text = settings.source or "", settings.text
    for name, table_data in settings.apis.items():
        if name in by_name:
            line = _header_line(text, f"apis.{name}") if text else None
            where = f"{source}, line {line}" if line else source
            raise ConfigError(
                f"{where}: apis.{name}: a profile of that name is installed already "
                f"(change it under [profiles.{name}])"
            )
        by_name[name] = _api(name, table_data, source, text)
    for name, changes in settings.profiles.items():
        table = f"profiles.{name}"
        if name not in by_name:
            installed = ", ".join(sorted(by_name)) or "none"
            raise ConfigError(f"{source}: {table}: no such profile (installed: {installed})")
        profile = by_name[name]
        converted = {}
        for field, value in changes.items():
            where = _at(source, text, table, field)
            if field == "freshness" and isinstance(value, Mapping) and value:
                where = _at(source, text, f"{table}.freshness", next(iter(value)))
            if field not in _PROFILE_FIELDS:
                known = ", ".join(_PROFILE_FIELDS)
                raise ConfigError(f"{where}: {table}.{field}: unknown setting (known: {known})")
            try:
                converted[field] = _convert(field, value, profile)
            except (ConfigError, TypeError) as exc:
                detail = exc.args[0] if isinstance(exc, ConfigError) else str(exc)
                key = re.match(r"(\w+):", detail)
                if field == "freshness" and key and isinstance(value, Mapping) and key[1] in value:
                    where = _at(source, text, f"{table}.freshness", key[1])
                raise ConfigError(f"{where}: {table}.{field}: {detail}") from None
        try:
            by_name[name] = attrs.evolve(profile, **converted)
        except ConfigError as exc:
            found = re.search(r"ApiProfile\.(\w+)", exc.args[0])
            where = _at(source, text, table, found.group(1)) if found else source
            raise ConfigError(f"{where}: {table}: {exc.args[0]}") from None
    return list(by_name.values())
