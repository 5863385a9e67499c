"""The gateway's settings: bounds must nest, TLS comes as a pair."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from robostream.config import GatewaySettings


def test_defaults_nest_frame_connection_and_total_bounds() -> None:
    gateway = GatewaySettings()
    assert gateway.max_frame_bytes <= gateway.max_inflight_bytes_per_connection <= gateway.max_inflight_bytes


def test_a_frame_larger_than_a_connection_budget_is_refused() -> None:
    with pytest.raises(ValidationError, match="max_frame_bytes <= max_inflight_bytes_per_connection"):
        GatewaySettings(max_frame_bytes=2048, max_inflight_bytes_per_connection=1024)


def test_tls_needs_both_certificate_and_key(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="tls_cert and tls_key go together"):
        GatewaySettings(tls_cert=tmp_path / "gateway.crt")
