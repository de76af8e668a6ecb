"""A pytest plugin for both runs of httpx's tests: their uvicorn server on a free port.

httpx's ``tests/conftest.py`` serves its test app on uvicorn's default port, 8000. Two runs
at once (the bare and the quotaflow run, or two worktrees on one machine) would then
share one server or wait forever for theirs to start. The tests read the address from
``server.url``, so any port will do: the default becomes a free one.
"""

from __future__ import annotations

import socket
from typing import Any

from uvicorn.config import Config

_init = Config.__init__


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _init_on_free_port(self: Config, app: Any, **kwargs: Any) -> None:
    if "port" not in kwargs:
        kwargs["port"] = _free_port()
    _init(self, app, **kwargs)


Config.__init__ = _init_on_free_port  # type: ignore[method-assign,assignment]
