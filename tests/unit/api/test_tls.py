"""``api.tls_cert`` / ``api.tls_key``: the server loads them with the gateway's TLS helper."""

from __future__ import annotations

from pathlib import Path

import pytest

from robostream.api import ApiServer
from robostream.config import Settings
from robostream.gateway import GatewayStartError
from robostream.gateway.app import ssl_context
from robostream.tls import TlsConfigError, server_ssl_context


def test_without_tls_the_api_serves_plain_http() -> None:
    server = ApiServer(Settings(), port=8123)
    assert not server.tls and server.url == "http://127.0.0.1:8123"
    assert server_ssl_context(None, None) is None


def test_an_unreadable_certificate_fails_before_listening_and_names_both_files(tmp_path: Path) -> None:
    cert, key = tmp_path / "api.crt", tmp_path / "api.key"
    cert.write_text("not a certificate")
    key.write_text("not a key")
    base = Settings()
    settings = base.model_copy(update={"api": base.api.model_copy(update={"tls_cert": cert, "tls_key": key})})
    with pytest.raises(TlsConfigError, match=f"cannot load TLS certificate {cert} / key {key}"):
        ApiServer(settings)
    # the gateway shares the helper and reports the same problem as a start error
    pair = {"tls_cert": cert, "tls_key": key}
    gateway = base.model_copy(update={"gateway": base.gateway.model_copy(update=pair)})
    with pytest.raises(GatewayStartError, match=f"cannot load TLS certificate {cert} / key {key}"):
        ssl_context(gateway)
