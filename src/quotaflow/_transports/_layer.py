"""What every layer of the stack does alike: it wraps ``next_transport``, and entering,
exiting and closing it reach the layers below, as httpx does with the transport it is
given (``with client:`` enters and exits it). Strictly private."""

from __future__ import annotations

from types import TracebackType

import httpx


class Layer(httpx.BaseTransport):
    """A layer over ``next_transport``; ``_close_own`` closes what the layer itself holds."""

    next_transport: httpx.BaseTransport

    def _close_own(self) -> None:
        """Nothing by default."""

    def __enter__(self) -> Layer:
        self.next_transport.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        try:
            self._close_own()
        finally:
            self.next_transport.__exit__(exc_type, exc_value, traceback)

    def close(self) -> None:
        try:
            self._close_own()
        finally:
            self.next_transport.close()


class AsyncLayer(httpx.AsyncBaseTransport):
    """Async twin of :class:`Layer`."""

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
