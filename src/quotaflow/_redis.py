"""Shared state in Redis, for several processes or machines on one API key.

Imported only when ``redis_url`` is given. Strictly private.
"""

from __future__ import annotations

from pathlib import Path

from ._backend import Backend


def redis_backend(
    url: str, *, prefix: str, fail: str, directory: Path, retention: float
) -> Backend:
    """The Redis backend for ``url``; see ``make_client(redis_url=...)``."""
    raise NotImplementedError
