"""What a request for a point in time asks of an archive, and what an answer covers.

``ApiProfile(snapshot=...)`` returns these, so that the cold store can answer a request
for any moment inside a window it already holds (``_cold.py``).
"""

from __future__ import annotations

import attrs

__all__ = ["Snapshot"]


@attrs.frozen
class Snapshot:
    """A window of time one answer of an archive covers.

    Args:
        series: what is asked, without the moment: the same for every request that
            only differs by it (e.g. the path and query without ``date``).
        start: the first moment (epoch seconds) the answer is the archive's answer for.
        end: the first moment it no longer is (exclusive). For a request, ``start``
            and ``end`` are the same: the moment asked for.

    .. versionadded:: 0.3
    """

    series: str = attrs.field(validator=attrs.validators.instance_of(str))
    start: float = attrs.field(converter=float)
    end: float = attrs.field(converter=float)
