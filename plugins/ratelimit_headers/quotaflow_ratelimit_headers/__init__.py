"""quotaflow profiles for any API that reports its quota in rate-limit headers.

``profile_for()`` builds one in code. In ``quotaflow.toml`` an ``[apis.NAME]`` table
with ``headers = "ratelimit"`` gets this package's readers (:func:`readers`, published
under the ``quotaflow.headers`` entry-point group). Deprecated: the ``[[api]]`` tables
of the file named by ``$QUOTAFLOW_RATELIMIT_FILE`` (``profiles_from_file()``), still
read by the ``ratelimit_headers`` plugin. The parsers are public and never raise on
bad input.
"""

from ._config import ENV_VAR, plugin_profiles, profiles_from_file
from ._parse import Limit, Policy, parse_count, parse_policy, parse_ratelimit, parse_reset
from ._profile import FixedTtl, RateLimitHeaders, RateLimitWindow, profile_for, readers

__all__ = [
    "ENV_VAR",
    "FixedTtl",
    "Limit",
    "Policy",
    "RateLimitHeaders",
    "RateLimitWindow",
    "parse_count",
    "parse_policy",
    "parse_ratelimit",
    "parse_reset",
    "plugin_profiles",
    "profile_for",
    "profiles_from_file",
    "readers",
]
