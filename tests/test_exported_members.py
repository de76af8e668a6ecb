"""The public surface is exactly what __all__ says."""

from __future__ import annotations

import httpx

import quotaflow
import quotaflow.exceptions
import quotaflow.profiles


def test_all_is_sorted_and_complete() -> None:
    """__all__ lists every public name, sorted, and each exists."""
    # "@py_builtins": pytest rewrites the asserts of a package with a pytest11 plugin
    # (quotaflow.testing's fixture). Public submodules are not re-exported names.
    public = {name for name in dir(quotaflow) if not name.startswith(("_", "@"))}
    public -= {"exceptions", "events", "profiles", "testing", "annotations"}

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


def test_profiles_module_is_sorted_and_complete() -> None:
    """quotaflow.profiles (what plugin authors use) lists exactly its public names."""
    module = quotaflow.profiles
    public = {name for name in dir(module) if not name.startswith(("_", "@"))}
    public -= {"annotations"}

    assert module.__all__ == sorted(module.__all__)
    assert set(module.__all__) == public
    # The names applications also see are the same objects.
    for name in set(module.__all__) & set(quotaflow.__all__):
        assert getattr(module, name) is getattr(quotaflow, name)


def test_api_profile_is_keyword_only() -> None:
    """ApiProfile's ~30 fields are passed by name: positional arguments are refused."""
    import pytest

    with pytest.raises(TypeError):
        quotaflow.profiles.ApiProfile("x", ("api.test",))  # type: ignore[misc]
    assert quotaflow.profiles.ApiProfile(name="x", hosts=("api.test",)).name == "x"
