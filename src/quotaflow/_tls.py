"""SSL contexts built once per distinct TLS setting and shared by clients. Strictly private.

Loading the CA bundle is most of what building an ``httpx.Client`` costs (~20 ms: the
``load_verify_locations`` of ``httpx.create_ssl_context``). A process that builds many
clients with the same TLS settings builds one context. A context is shared only when
nothing client-specific goes into it: ``verify`` True or False (a context or path the
caller gave is used as given), no client certificate (``cert`` is loaded *into* the
context), and the same ``http1``/``http2`` (httpcore sets the context's ALPN protocols
from them on each connection). With ``trust_env``, ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``
are part of the key, as httpx reads them.
"""

from __future__ import annotations

import os
import ssl
import threading
from typing import Any

import httpx

__all__ = ["shared_tls"]

_CONTEXTS: dict[tuple[Any, ...], ssl.SSLContext] = {}
_LOCK = threading.Lock()


def shared_tls(network: dict[str, Any]) -> dict[str, Any]:
    """``network`` (the client's connection arguments) with ``verify`` replaced by the
    process's shared SSL context for these settings, when one may be shared."""
    verify = network.get("verify", True)
    if network.get("cert") is not None or not isinstance(verify, bool):
        return network
    trust_env = bool(network.get("trust_env", True))
    env = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")) if trust_env else ()
    key = (verify, trust_env, env, network.get("http1", True), network.get("http2", False))
    with _LOCK:
        context = _CONTEXTS.get(key)
        if context is None:
            context = _CONTEXTS[key] = httpx.create_ssl_context(verify=verify, trust_env=trust_env)
    return {**network, "verify": context}
