"""What profile and plugin authors use: describe an API, read its quota, publish a plugin.

Applications build clients with :mod:`quotaflow`; a plugin (a distribution publishing
profiles under the ``quotaflow.plugins`` entry-point group) needs only this module and
:mod:`quotaflow.exceptions`::

    from quotaflow.profiles import ApiProfile, Plugin, Quota, QuotaHeaders, Rate

    PROFILE = ApiProfile(
        name="example",
        hosts=("api.example.com",),
        rates=(Rate(10, per=1.0),),
        quota=Quota(1000, period="day"),
        read_quota=QuotaHeaders(remaining="x-remaining"),
    )
    PLUGIN = Plugin(name="example", profiles=(PROFILE,))

Every class here is frozen and validated (a bad value is a
:class:`~quotaflow.exceptions.ConfigError` naming the field); ``ApiProfile`` takes
keyword arguments only. Change one with :func:`attrs.evolve`.

.. versionadded:: 0.2
"""

from __future__ import annotations

from ._plugins import Plugin
from ._profiles import (
    ApiProfile,
    FreshnessRule,
    Quota,
    QuotaHeaders,
    QuotaReading,
    Rate,
    Verdict,
    WindowHeaders,
    WindowReading,
    parse_duration,
)
from ._settings import default_state_dir
from ._snapshots import Snapshot

__all__ = [
    "ApiProfile",
    "FreshnessRule",
    "Plugin",
    "Quota",
    "QuotaHeaders",
    "QuotaReading",
    "Rate",
    "Snapshot",
    "Verdict",
    "WindowHeaders",
    "WindowReading",
    "default_state_dir",
    "parse_duration",
]
