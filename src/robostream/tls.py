"""Server TLS contexts and base URLs shared by robostream's servers (gateway, API, registry) and clients.

Kept outside both parts so either may use it without importing
the other.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from robostream.errors import RobostreamError
from robostream_sdk.transport import http_url

__all__ = ["TlsConfigError", "http_url", "server_ssl_context"]


class TlsConfigError(RobostreamError):
    """The certificate or key cannot be loaded; the message names both files and the reason."""


def server_ssl_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """A server context (TLS 1.2+) from a PEM certificate (chain) and key; None when not set."""
    if cert is None or key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(f"cannot load TLS certificate {cert} / key {key}: {exc}") from None
    return context
