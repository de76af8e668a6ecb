"""The public surface is exactly what __all__ says."""

from __future__ import annotations

import httpx

import quotaflow
import quotaflow.exceptions


def test_all_is_sorted_and_complete() -> None:
    """__all__ lists every public name, sorted, and each exists."""
    # "@py_builtins": pytest rewrites the asserts of a package with a pytest11 plugin
    # (quotaflow.testing's fixture). Public submodules are not re-exported names.
    public = {name for name in dir(quotaflow) if not name.startswith(("_", "@"))}
    public -= {"exceptions", "events", "testing", "annotations"}

    assert quotaflow.__all__ == sorted(quotaflow.__all__)
    assert set(quotaflow.__all__) == public


def test_version_comes_from_metadata() -> None:
    """__version__ is the installed distribution's."""
    from importlib.metadata import version

    assert quotaflow.__version__ == version("quotaflow")


def test_exception_tree() -> None:
    """Every error derives from QuotaflowError (a plain Exception); refusals are also
    httpx.TransportErrors, ConfigError a ValueError (tests/test_exceptions.py has the matrix).
    """
    for name in quotaflow.exceptions.__all__:
        assert issubclass(getattr(quotaflow.exceptions, name), quotaflow.QuotaflowError)
        assert getattr(quotaflow, name) is getattr(quotaflow.exceptions, name)
    assert not issubclass(quotaflow.QuotaflowError, httpx.TransportError)
    assert issubclass(quotaflow.RequestRefused, httpx.TransportError)
    assert issubclass(quotaflow.ConfigError, ValueError)
