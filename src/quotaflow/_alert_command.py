"""The user's command run when a quota falls to an alert level. Strictly private.

``alert_command = ["notify-send", "quota low"]`` (TOML, top level) or
``make_client(alert_command=[...])``: an argv list, run without a shell, with
``QUOTAFLOW_PROFILE``, ``QUOTAFLOW_REMAINING``, ``QUOTAFLOW_THRESHOLD`` and
``QUOTAFLOW_TOTAL`` in its environment. It runs in a background thread with a timeout:
a request never waits for it, and a failure (not found, a non-zero exit, the timeout)
is logged, never raised. It runs where the ledger tells a crossing, which is once per
crossing across every process sharing the state (the transaction that crossed it).
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from collections.abc import Sequence

import attrs

from .exceptions import ConfigError

__all__ = ["AlertCommand", "alert_command"]

logger = logging.getLogger("quotaflow")

# Seconds a command may run before it is killed (and the failure logged).
TIMEOUT = 30.0


@attrs.frozen
class AlertCommand:
    """An argv list to run per alert crossing. Strictly private."""

    argv: tuple[str, ...]
    timeout: float = TIMEOUT

    def run(self, profile: str, remaining: int, threshold: int, total: int) -> threading.Thread:
        """Start the command in a daemon thread; return the thread (tests join it)."""
        env = {
            **os.environ,
            "QUOTAFLOW_PROFILE": profile,
            "QUOTAFLOW_REMAINING": str(remaining),
            "QUOTAFLOW_THRESHOLD": str(threshold),
            "QUOTAFLOW_TOTAL": str(total),
        }
        thread = threading.Thread(
            target=self._run, args=(env, profile), name="quotaflow-alert", daemon=True
        )
        thread.start()
        return thread

    def _run(self, env: dict[str, str], profile: str) -> None:
        try:
            # An argv list the user configured: no shell, so nothing is interpreted.
            done = subprocess.run(
                self.argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            logger.warning(
                "profile %s: alert_command %s timed out after %g s (killed)",
                profile,
                self.argv[0],
                self.timeout,
            )
            return
        except OSError as exc:
            logger.warning("profile %s: alert_command %s failed: %s", profile, self.argv[0], exc)
            return
        if done.returncode != 0:
            tail = done.stderr.decode("utf-8", "replace").strip()[-200:]
            logger.warning(
                "profile %s: alert_command %s exited %d: %s",
                profile,
                self.argv[0],
                done.returncode,
                tail,
            )


def alert_command(value: object, where: str = "alert_command") -> AlertCommand | None:
    """The checked command: None, or a non-empty list of strings (argv, no shell).

    Raises:
        ConfigError: anything else, naming the field.
    """
    if value is None:
        return None
    if (
        isinstance(value, str | bytes)
        or not isinstance(value, Sequence)
        or not value
        or not all(isinstance(part, str) and part for part in value)
    ):
        raise ConfigError(
            f"{where}: expected a list of strings, the command and its arguments "
            f"(run without a shell), not {value!r}"
        )
    return AlertCommand(tuple(value))
