"""What every layer of the stack does alike: it wraps ``next_transport``, and entering,
exiting and closing it reach the layers below, as httpx does with the transport it is
given (``with client:`` enters and exits it). Written once, async: ``.ci/unasync.py``
generates the sync twin, ``_sync_layer.py``. Strictly private."""

from __future__ import annotations

from types import TracebackType

import httpx


class AsyncLayer(httpx.AsyncBaseTransport):
    """A layer over ``next_transport``; ``_aclose_own`` closes what the layer itself holds."""

    next_transport: httpx.AsyncBaseTransport

    async def _aclose_own(self) -> None:
        """Nothing by default."""

    async def __aenter__(self) -> AsyncLayer:
        await self.next_transport.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        try:
            await self._aclose_own()
        finally:
            await self.next_transport.__aexit__(exc_type, exc_value, traceback)

    async def aclose(self) -> None:
        try:
            await self._aclose_own()
        finally:
            await self.next_transport.aclose()
