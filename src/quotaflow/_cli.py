"""The ``quotaflow`` command.

The core's commands are here; a plugin adds its own (and the demo's scenario) through
:class:`quotaflow.Plugin`'s ``commands`` and ``demo`` hooks. The core imports no plugin:
it asks the ``quotaflow.plugins`` entry points what they offer.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
from pathlib import Path

from . import _cli_parser
from ._cli_parser import DEMO_INSTALL
from ._plugins import Plugin, _as_plugin, _entry_points

__all__ = ["main"]

# What the demo imports beyond quotaflow's own dependencies: (module, distribution).
DEMO_NEEDS = (
    ("respx", "respx"),
    ("time_machine", "time-machine"),
)
# Commands that plugins this project ships add, and what to install for each: named
# here only to say so when the plugin is missing (the core imports no plugin).
FROM_PLUGINS = {"history": "quotaflow-theoddsapi"}
DEMO_PLUGIN = "quotaflow-theoddsapi"


def installed_plugins() -> list[Plugin]:
    """The plugins published under ``quotaflow.plugins`` that load.

    One that does not load adds no command here; building a client says why.
    """
    found = []
    for entry_point in _entry_points():
        try:
            found.append(_as_plugin(entry_point.load(), f"plugin {entry_point.name!r}"))
        except Exception:  # reported by make_client, not by every command
            continue
    return found


def _missing(modules: tuple[tuple[str, str], ...]) -> list[str]:
    missing = []
    for module, distribution in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(distribution)
    return missing


def _demo(args: argparse.Namespace, plugins: list[Plugin]) -> int:
    demos = [plugin for plugin in plugins if plugin.demo is not None]
    if args.plugin is not None:
        demos = [plugin for plugin in demos if plugin.name == args.plugin]
    missing = _missing(DEMO_NEEDS)
    if not demos:
        missing.append(DEMO_PLUGIN if args.plugin is None else f"a plugin {args.plugin!r}")
    if missing:
        print(f"quotaflow demo needs {', '.join(missing)}: {DEMO_INSTALL}", file=sys.stderr)
        return 2
    if len(demos) > 1:
        names = ", ".join(plugin.name for plugin in demos)
        print(
            f"quotaflow demo: several plugins have a demo ({names}): choose with --plugin",
            file=sys.stderr,
        )
        return 2
    run = demos[0].demo
    assert run is not None
    state_dir: Path | None = args.state_dir
    if state_dir is None:
        with tempfile.TemporaryDirectory(prefix="quotaflow-demo-") as temporary:
            run(Path(temporary), sys.stdout, temporary=True)
        return 0
    if state_dir.exists() and (not state_dir.is_dir() or any(state_dir.iterdir())):
        print(f"quotaflow demo: --state-dir {state_dir} must be new or empty", file=sys.stderr)
        return 2
    run(state_dir, sys.stdout, temporary=False)
    return 0


def _plan(args: argparse.Namespace) -> int:
    import json

    import attrs

    from ._client import make_client
    from ._plan import plan
    from .exceptions import ConfigError, StateUnavailable

    try:
        source = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        print(f"quotaflow plan: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    with source:
        urls = [
            line.strip() for line in source if line.strip() and not line.lstrip().startswith("#")
        ]
    try:
        with make_client(
            state_dir=args.state_dir,
            redis_url=args.redis_url,
            redis_prefix=args.redis_prefix,
        ) as client:
            result = plan(client, urls, priority=args.priority)
    except (ConfigError, ValueError) as exc:
        print(f"quotaflow plan: {exc}", file=sys.stderr)
        return 2
    except StateUnavailable as exc:  # e.g. Redis went away after the client was built
        print(f"quotaflow plan: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(attrs.asdict(result), indent=2, default=str))
    else:
        for row in result.requests:
            answer = "cache" if row.fresh else f"upstream, cost {row.cost}"
            print(f"{row.profile:<12} {answer:<22} {row.url}")
        left = ", ".join(f"{k} {'?' if v is None else v}" for k, v in result.remaining.items())
        verdict = "fits" if result.fits else "does NOT fit"
        print(
            f"\n{len(result.requests)} requests: {result.upstream} upstream costing "
            f"{result.cost}; remaining {left or '-'}; {verdict} at priority {result.priority}"
        )
    return 0 if result.fits else 1


def _status(args: argparse.Namespace) -> int:
    from . import _cli_status
    from .exceptions import ConfigError, StateUnavailable

    try:
        return _cli_status.run(args)
    except ConfigError as exc:
        print(f"quotaflow status: {exc}", file=sys.stderr)
        return 2
    except StateUnavailable as exc:  # e.g. Redis went away between two reads
        print(f"quotaflow status: {exc}", file=sys.stderr)
        return 1


def _dashboard(args: argparse.Namespace) -> int:
    from . import _dashboard
    from .exceptions import ConfigError

    try:
        return _dashboard.run(args)
    except ConfigError as exc:
        print(f"quotaflow dashboard: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the port is taken, or the address is not ours
        print(
            f"quotaflow dashboard: cannot listen on {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 2


def _explain(args: argparse.Namespace) -> int:
    from . import _explain

    return _explain.run(args)


def _record(args: argparse.Namespace) -> int:
    from . import _cli_cassette

    return _cli_cassette.record(args)


def _replay(args: argparse.Namespace) -> int:
    from . import _cli_cassette

    return _cli_cassette.replay(args)


COMMANDS = {
    "plan": _plan,
    "status": _status,
    "dashboard": _dashboard,
    "explain": _explain,
    "record": _record,
    "replay": _replay,
}


def main(argv: list[str] | None = None) -> int:
    """Run the ``quotaflow`` command; return its exit status.

    A reader that stops early (``quotaflow status --json | head -1``) closes the pipe:
    that is not an error, so it ends the command quietly instead of with a traceback.
    Status: the command's own when only the final flush failed, else 0.
    """
    code = 0
    try:
        code = _run(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # The recipe of the Python docs (library/signal, "Note on SIGPIPE"): point stdout
        # at devnull so the interpreter's own flush at exit cannot fail a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return code


def _not_installed(argv: list[str], parser: argparse.ArgumentParser) -> str | None:
    """The line to print when ``argv`` names a command of a plugin that is missing."""
    command = next((word for word in argv if not word.startswith("-")), None)
    if command not in FROM_PLUGINS:
        return None
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return None
    distribution = FROM_PLUGINS[command]
    return (
        f"quotaflow {command} comes with the {distribution} plugin, which is not installed "
        f"(or does not load): pip install {distribution}"
    )


def _run(argv: list[str]) -> int:
    plugins = installed_plugins()
    parser = _cli_parser.build(plugins)
    hint = _not_installed(argv, parser)
    if hint is not None:
        print(hint, file=sys.stderr)
        return 2
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error
        return exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    if args.command == "demo":
        return _demo(args, plugins)
    handler = COMMANDS.get(args.command) or getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    code: int = handler(args)
    return code
