"""A pytest plugin that makes ``httpx.Client`` and ``httpx.AsyncClient`` quotaflow clients.

Loaded with ``-p quotaflow_swap`` (this directory on ``PYTHONPATH``) into a pytest run of
httpx 0.28.1's own tests (``tests/test_httpx_conformance.py``), so every client those tests
build goes through ``make_client`` / ``make_async_client``.

How the swap works: ``httpx.Client`` and ``httpx.AsyncClient`` are replaced, before any
test module is imported, by subclasses. A subclass's ``__init__`` calls quotaflow's public
``make_client`` (``make_async_client``) with the arguments it was given, plus
``plugins=False``, ``config=False`` and a fresh ``state_dir`` for the running test, and then
adopts the state of the client quotaflow built (its ``__dict__``: the stack as
``_transport``, the mounts, auth, headers, cookies, hooks...). So the instance the test holds
is the one quotaflow configured, yet still an instance of the class the test named:
``isinstance(client, httpx.Client)`` and ``class MyClient(httpx.Client)`` keep working.

Why adopt rather than rebuild the stack from quotaflow's internals and pass it to
``super().__init__(transport=...)``: only the public API is used, so whatever
``make_client`` grows (mounts routed behind the stack, a transport wrapper) is what the
tests see, and quotaflow's private builders can change without breaking this plugin.

Limits: quotaflow must return a plain ``httpx.Client`` / ``httpx.AsyncClient`` (a subclass
would lose its methods here, so it is refused loudly); ``quotaflow.plan``/``info`` do not
know the adopted instance (they look clients up by identity); clients built at import time,
outside a test, share one session state directory.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import quotaflow

__all__ = ["QuotaflowAsyncClient", "QuotaflowClient"]

OriginalClient = httpx.Client
OriginalAsyncClient = httpx.AsyncClient

_state = threading.local()
# The running test's directory (set by the fixture below), else the session's.
_current: dict[str, Path] = {}


def _state_dir() -> Path:
    """A new state directory per client, under the running test's directory."""
    return Path(tempfile.mkdtemp(prefix="client-", dir=_current.get("test", _current["session"])))


def _adopt(client: httpx.Client | httpx.AsyncClient, made: Any, original: type) -> None:
    if type(made) not in (original, type(client)):
        raise TypeError(
            f"quotaflow_swap: make_client returned a {type(made).__qualname__}, not a plain "
            f"{original.__qualname__}; adopting its __dict__ would drop its methods"
        )
    client.__dict__.update(made.__dict__)


class QuotaflowClient(OriginalClient):
    """``httpx.Client``, built by ``quotaflow.make_client`` from the same arguments."""

    def __init__(self, **kwargs: Any) -> None:
        if getattr(_state, "building", False):
            # make_client itself builds an httpx.Client (looked up now or at import):
            # that one is a plain client.
            super().__init__(**kwargs)
            return
        _state.building = True
        try:
            made = quotaflow.make_client(
                plugins=False, config=False, state_dir=_state_dir(), **kwargs
            )
        finally:
            _state.building = False
        _adopt(self, made, OriginalClient)


class QuotaflowAsyncClient(OriginalAsyncClient):
    """``httpx.AsyncClient``, built by ``quotaflow.make_async_client`` likewise."""

    def __init__(self, **kwargs: Any) -> None:
        if getattr(_state, "building", False):
            super().__init__(**kwargs)
            return
        _state.building = True
        try:
            made = quotaflow.make_async_client(
                plugins=False, config=False, state_dir=_state_dir(), **kwargs
            )
        finally:
            _state.building = False
        _adopt(self, made, OriginalAsyncClient)


# httpx's tests parametrize over the classes: their ids carry the class name, and must
# match the bare run's to be compared.
QuotaflowClient.__name__ = QuotaflowClient.__qualname__ = "Client"
QuotaflowAsyncClient.__name__ = QuotaflowAsyncClient.__qualname__ = "AsyncClient"
# At plugin import, before pytest imports httpx's conftest and test modules, so
# ``from httpx import Client`` there gets the swapped class too.
httpx.Client = QuotaflowClient  # type: ignore[misc]
httpx.AsyncClient = QuotaflowAsyncClient  # type: ignore[misc]


@pytest.hookimpl(trylast=True)  # after pytest's tmpdir plugin made the factory
def pytest_configure(config: pytest.Config) -> None:
    # Clients built outside a test (at import) share one directory under pytest's basetemp.
    _current["session"] = config._tmp_path_factory.mktemp("quotaflow-session")  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _quotaflow_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each test's clients keep their state in a directory of that test's own."""
    _current["test"] = tmp_path_factory.mktemp("quotaflow")
    yield
    _current.pop("test", None)


def pytest_report_header() -> str:
    return f"quotaflow_swap: httpx.Client/AsyncClient built by quotaflow {quotaflow.__version__}"
