"""Where the examples connect: the gateway URL, robot id and token from the environment."""

from __future__ import annotations

import os

GATEWAY = os.environ.get("ROBOSTREAM_GATEWAY", "http://127.0.0.1:8080")
ROBOT = os.environ.get("ROBOSTREAM_ROBOT", "robot_001")
TOKEN = os.environ.get("ROBOSTREAM_TOKEN")
