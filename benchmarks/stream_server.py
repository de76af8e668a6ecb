"""The HTTP/1.1 server streaming.py measures against (standard library only, so it
starts fast): ``python stream_server.py SIZE CHUNK`` prints its port on 127.0.0.1, then
serves until its stdin closes.

    /big?...   SIZE bytes in CHUNK-byte writes, Content-Length, Cache-Control: max-age=600
    /small     1 KiB, cacheable (opens a client's state before timing)
    /count     how many /big bodies were served so far (never cached)
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve(size: int, chunk: int) -> None:
    """Serve ``/big?...`` (``size`` bytes in ``chunk``-byte writes), ``/small`` and
    ``/count`` (big bodies served so far) until stdin closes; print the port first."""
    block = bytes(range(256)) * (chunk // 256) + bytes(chunk % 256)
    served = 0
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are separate writes: without TCP_NODELAY, Nagle and the
        # client's delayed ACK hold the second one back ~40 ms on some requests.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            nonlocal served
            if self.path == "/count":
                with lock:
                    self._head(str(served).encode(), "no-store")
                return
            if self.path.startswith("/small"):
                self._head(b"x" * 1024, "max-age=600")
                return
            with lock:
                served += 1
            self._head(None, "max-age=600", length=size)
            left = size
            while left > 0:
                piece = block if left >= chunk else block[:left]
                self.wfile.write(piece)
                left -= len(piece)

        def _head(self, body: bytes | None, cache: str, length: int = 0) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length if body is None else len(body)))
            self.send_header("Cache-Control", cache)
            self.end_headers()
            if body is not None:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()  # the parent closes our stdin when it is done; daemon threads end with us
    server.server_close()


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
