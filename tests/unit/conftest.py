"""Unit tests run without servers and without the test stack's ROBOSTREAM_* environment."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _no_robostream_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("ROBOSTREAM_") and key != "ROBOSTREAM_TEST_PORT_OFFSET":
            monkeypatch.delenv(key)
