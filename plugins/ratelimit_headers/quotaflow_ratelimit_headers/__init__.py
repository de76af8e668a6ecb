"""quotaflow profiles for any API that reports its quota in rate-limit headers.

``profile_for()`` builds one in code; ``profiles_from_file()`` reads them from TOML.
Installed as the ``ratelimit_headers`` plugin, it publishes the profiles of the file
named by ``$QUOTAFLOW_RATELIMIT_FILE`` (none if it is unset). The parsers are public
and never raise on bad input.
"""

from ._config import ENV_VAR, plugin_profiles, profiles_from_file
from ._parse import Limit, Policy, parse_count, parse_policy, parse_ratelimit, parse_reset
from ._profile import FixedTtl, RateLimitHeaders, RateLimitWindow, profile_for

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
]
