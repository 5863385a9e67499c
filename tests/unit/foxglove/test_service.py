"""``robostream foxglove`` without servers: what a user sees when it cannot start."""

from __future__ import annotations

import socket

import pytest

from robostream.config import Settings
from robostream.foxglove.service import FoxgloveBridge, FoxgloveServiceError


async def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        bridge = FoxgloveBridge(Settings(), port=port)
        expected = f"foxglove_listen_failed: cannot serve on 127.0.0.1:{port} "
        with pytest.raises(FoxgloveServiceError, match=expected):
            await bridge.start()
