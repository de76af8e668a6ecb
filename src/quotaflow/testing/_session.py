"""quotaflow clients over a :class:`Replayer`. Strictly private (public through
:mod:`quotaflow.testing`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx

from .._client import make_async_client, make_client
from .._profiles import ApiProfile
from ._cassette import Exchange
from ._replayer import Replayer

__all__ = ["ReplaySession"]


class ReplaySession:
    """quotaflow clients answered from one cassette, sharing one state directory.

    Every client it makes has the :class:`Replayer` innermost, its simulated clock,
    and its state (cache, quota ledger) in ``state_dir``; so a second run of the same
    code is answered from quotaflow's cache, and :attr:`spent` says what each run cost.
    This is what the ``quotaflow_replay`` pytest fixture returns.

    Args:
        cassette: a cassette file, or the exchanges read from one.
        state_dir: where the clients keep their state (a test's ``tmp_path``).
        profiles: the APIs' profiles, for the clients and the emulated quota;
            default: those the installed plugins publish.

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        cassette: str | os.PathLike[str] | Sequence[Exchange],
        state_dir: str | os.PathLike[str],
        *,
        profiles: Iterable[ApiProfile] | None = None,
    ) -> None:
        self._profiles = None if profiles is None else list(profiles)
        self.replayer = Replayer(cassette, profiles=self._profiles)
        self.state_dir = Path(state_dir)
        self._clients: list[httpx.Client] = []
        self._async_clients: list[httpx.AsyncClient] = []

    @property
    def spent(self) -> int:
        """Credits the emulated APIs charged so far (cache hits cost nothing)."""
        return self.replayer.spent

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {
            "state_dir": self.state_dir,
            "clock": self.replayer.clock,
            "transport": self.replayer.transport(),
            "config": False,
        }
        if self._profiles is not None:
            options |= {"profiles": self._profiles, "plugins": False}
        return options | kwargs

    def client(self, **kwargs: Any) -> httpx.Client:
        """A :func:`quotaflow.make_client` over the cassette; ``kwargs`` go to it.

        The session closes it in :meth:`close`.
        """
        made = make_client(**self._options(kwargs))
        self._clients.append(made)
        return made

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """A :func:`quotaflow.make_async_client` over the cassette; ``kwargs`` go to it.

        The session closes it in :meth:`aclose`.
        """
        made = make_async_client(**self._options(kwargs))
        self._async_clients.append(made)
        return made

    def close(self) -> None:
        """Close the sync clients it made."""
        while self._clients:
            self._clients.pop().close()

    async def aclose(self) -> None:
        """Close every client it made."""
        while self._async_clients:
            await self._async_clients.pop().aclose()
        self.close()
