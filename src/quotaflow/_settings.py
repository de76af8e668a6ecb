"""One settings object, assembled in one place. Strictly private.

:func:`load_settings` reads the code's arguments, the TOML configuration file and the
environment (``_config.py``), checks every value (a bad one is a
:class:`~quotaflow.exceptions.ConfigError` naming the field, before any state is opened)
and returns a frozen :class:`Settings`. ``make_client``, ``make_async_client``, ``plan``
(through the client), ``quotaflow status`` and the dashboard all start from it; the state
object (``_runtime.Runtime``) and then the stack are built from it.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

from . import _config
from ._alert_command import AlertCommand
from ._alert_command import alert_command as check_command
from ._clock import Clock
from ._cold import COLD_BYTES
from ._plugins import Registry, resolve_plugins
from ._profiles import ApiProfile
from ._rules import CacheRules, cache_rules
from ._transports._core import MAX_BODY
from .events import Subscriber
from .exceptions import ConfigError

__all__ = ["Settings", "default_state_dir", "load_settings"]

logger = logging.getLogger("quotaflow")

_FLAGS = ("cache", "rate_limit", "fallback")
_COUNTS = ("hot_entries", "hot_bytes", "max_body", "cold_bytes")


def default_state_dir() -> Path:
    """``$QUOTAFLOW_HOME``, else the user cache directory (``~/.cache/quotaflow``)."""
    if home := os.environ.get("QUOTAFLOW_HOME"):
        return Path(home).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "quotaflow"


# Temporary state directories made in place of an unwritable one: removed with the
# client that made them.
_FALLBACKS: set[Path] = set()


def remove_fallback(directory: Path) -> Callable[[], None]:
    """What removes ``directory`` if it is a temporary stand-in (else nothing)."""

    def remove() -> None:
        if directory in _FALLBACKS:
            _FALLBACKS.discard(directory)
            shutil.rmtree(directory, ignore_errors=True)

    return remove


def _given_dir(state_dir: str | os.PathLike[str] | None) -> Path:
    """The state directory named (or the default), checked, not made."""
    if state_dir is not None and not isinstance(state_dir, str | os.PathLike):
        raise ConfigError(f"state_dir: expected a path, not {type(state_dir).__name__}")
    if state_dir is not None and not os.fspath(state_dir):
        raise ConfigError("state_dir: empty; give a directory (or None for the default)")
    try:
        path = Path(state_dir).expanduser() if state_dir is not None else default_state_dir()
    except RuntimeError as exc:  # "~nobody-here/x": no such user's home
        raise ConfigError(f"state_dir: {state_dir!s}: {exc}") from None
    if path.exists() and not path.is_dir():
        raise ConfigError(f"state_dir: {path} is not a directory")
    return path


def state_dir_made(state_dir: str | os.PathLike[str] | None) -> Path:
    """The state directory, made if need be: private to the user (0700) when quotaflow
    makes it. One that cannot be written (read-only, or no space left, even to make it)
    gives way to a private temporary directory for this process, with one warning."""
    path = _given_dir(state_dir)
    try:
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                raise ConfigError(f"state_dir: cannot create {path}: {exc.strerror}") from exc
            raise
        # A byte written, not only a name: a full disk still has room for an empty file.
        with tempfile.TemporaryFile(dir=path) as probe:
            probe.write(b"\0")
            probe.flush()
    except OSError as exc:
        # A read-only or full state directory must not stop the program: keep state
        # for this process only, and say so once.
        fallback = Path(tempfile.mkdtemp(prefix="quotaflow-"))
        _FALLBACKS.add(fallback)
        logger.warning(
            "quotaflow: state_dir %s is not writable (%s); using %s for this process",
            path,
            exc.strerror,
            fallback,
        )
        return fallback
    return path


def _names(field: str, value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(name, str) and name for name in value):
        raise ConfigError(f"{field}: expected a list of names, not {value!r}")
    return tuple(value)


def _check_scalars(arguments: Mapping[str, Any]) -> None:
    """The plain values, before anything is read or made."""
    for name in _COUNTS:
        value = arguments[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name}: expected a whole number >= 0, not {value!r}")
    retries = arguments["retries"]
    if retries is not None and (
        not isinstance(retries, bool | int) or (not isinstance(retries, bool) and retries < 0)
    ):
        raise ConfigError(f"retries: expected True, False or a whole number >= 0, not {retries!r}")
    clock = arguments["clock"]
    if clock is not None and not isinstance(clock, Clock):
        raise ConfigError(f"clock: expected a quotaflow.Clock, not {type(clock).__name__}")
    if arguments["redis_fail"] not in ("open", "closed"):
        raise ConfigError(
            f"redis_fail: expected 'open' or 'closed', not {arguments['redis_fail']!r}"
        )
    prefix = arguments["redis_prefix"]
    if not isinstance(prefix, str) or not prefix:
        raise ConfigError(f"redis_prefix: expected a non-empty string, not {prefix!r}")
    for flag in _FLAGS:
        choice = arguments[flag]
        if choice is not None and not isinstance(choice, bool):
            raise ConfigError(f"{flag}: expected True, False or None, not {choice!r}")
    subscribers = arguments["subscribers"]
    if subscribers is not None and (
        isinstance(subscribers, str) or not all(callable(s) for s in subscribers)
    ):
        raise ConfigError("subscribers: expected a list of callables taking an event")


@attrs.frozen
class Settings:
    """Everything a client is built from, checked. Strictly private.

    Attributes:
        directory: the state directory (made, and writable; or a temporary stand-in).
        registry: the profiles (plugins', the code's, then the config file's changes).
        subscribers: the plugins' subscribers, then the caller's.
        clock: time and sleep.
        cache, rate_limit, fallback: which layers run (code, else file/env, else on).
        rules: the client's ``default_ttl`` and ``url_rules``.
        redis_url: the shared state's Redis (code, else ``$QUOTAFLOW_REDIS_URL``), or None.
        source: the configuration file read (or ``"environment"``).
    """

    directory: Path
    registry: Registry
    subscribers: tuple[Subscriber, ...]
    clock: Clock
    cache: bool
    rate_limit: bool
    fallback: bool
    retries: bool | int | None
    max_body: int
    hot_entries: int
    hot_bytes: int
    cold_bytes: int
    rules: CacheRules
    redis_url: str | None
    redis_prefix: str
    redis_fail: Literal["open", "closed"]
    source: str | None = None
    alert_command: AlertCommand | None = None


def configured(
    profiles: Iterable[ApiProfile] | None,
    plugins: bool,
    config: str | os.PathLike[str] | bool | None,
    directory: Path | None = None,
    secrets: tuple[Iterable[str], Iterable[str]] = ((), ()),
) -> tuple[Registry, list[Subscriber], _config.Settings]:
    """The profiles: the plugins', then ``profiles``, then the configuration file's
    changes and APIs; the plugins' subscribers (started for ``directory`` when given);
    the file's settings."""
    registry, found = resolve_plugins(profiles, plugins, directory)
    read = _config.load(config)
    params, headers = (_names(name, value) for name, value in zip(_SECRETS, secrets, strict=True))
    applied = _config.apply(read, registry.profiles)
    return Registry(applied, params, headers), found, read


_SECRETS = ("secret_params", "secret_headers")


def _check_exists(state_dir: str | os.PathLike[str] | None) -> None:
    """Reading a state must not create one: a typo would show a believable empty quota.
    (With Redis the shared state is there; the directory may well be new.)"""
    directory = _given_dir(state_dir)
    if not directory.exists():
        raise ConfigError(
            f"state directory {directory} does not exist: nothing has run with it "
            "(check --state-dir or $QUOTAFLOW_HOME)"
        )


def load_settings(
    *,
    profiles: Iterable[ApiProfile] | None = None,
    plugins: bool = True,
    state_dir: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | bool | None = None,
    redis_url: str | None = None,
    redis_prefix: str = "quotaflow",
    redis_fail: Literal["open", "closed"] = "closed",
    hot_entries: int = 1024,
    hot_bytes: int = 32 * 2**20,
    subscribers: Iterable[Subscriber] | None = None,
    cache: bool | None = None,
    rate_limit: bool | None = None,
    fallback: bool | None = None,
    retries: bool | int | None = None,
    max_body: int = MAX_BODY,
    default_ttl: float | str | None = None,
    url_rules: Mapping[str, float | str] | None = None,
    secret_params: Iterable[str] = (),
    secret_headers: Iterable[str] = (),
    clock: Clock | None = None,
    cold_bytes: int = COLD_BYTES,
    alert_command: Sequence[str] | None = None,
    read_only: bool = False,
) -> Settings:
    """The one place settings are assembled: code arguments win over the configuration
    file, which the environment overrides (``_config.py``); then the defaults.

    Takes :func:`quotaflow.make_client`'s own arguments. With ``read_only`` (``quotaflow
    status``, the dashboard), the state directory must exist already unless the state is
    in Redis, and plugins are not started.

    Raises:
        ConfigError: a setting is invalid; the message names it.
    """
    _check_scalars(locals())
    cache_rules(default_ttl, url_rules)  # the code's, before anything is made
    command = check_command(alert_command)
    if redis_url is None:
        redis_url = os.environ.get("QUOTAFLOW_REDIS_URL") or None
    if read_only and not redis_url:
        _check_exists(state_dir)
    directory = state_dir_made(state_dir)
    registry, found, read = configured(
        profiles,
        plugins,
        config,
        None if read_only else directory,
        (secret_params, secret_headers),
    )
    given = {"cache": cache, "rate_limit": rate_limit, "fallback": fallback}
    flags = {flag: read.flags.get(flag, True) for flag in _FLAGS}
    flags.update({flag: value for flag, value in given.items() if value is not None})
    rules = cache_rules(
        default_ttl if default_ttl is not None else read.default_ttl,
        url_rules if url_rules is not None else read.url_rules,
    )
    return Settings(
        directory=directory,
        registry=registry,
        subscribers=(*found, *(subscribers or ())),
        clock=clock or Clock(),
        retries=retries,
        max_body=max_body,
        hot_entries=hot_entries,
        hot_bytes=hot_bytes,
        cold_bytes=cold_bytes,
        rules=rules,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        redis_fail=redis_fail,
        source=read.source,
        alert_command=command if command is not None else check_command(read.alert_command),
        **flags,
    )
