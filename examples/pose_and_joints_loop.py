"""Stream pose and joint states from a 100 Hz control loop with the blocking client.

``send`` never waits for the network: the SDK batches, spools to disk and sends from its own
thread, so the loop keeps its rate even while the gateway is away.
"""

from __future__ import annotations

import math
import sys
import time

from _common import GATEWAY, ROBOT, TOKEN

from robostream_sdk import SessionConfig, SyncRobotClient

RATE_HZ = 100
JOINTS = 6


def read_robot(t: float) -> tuple[list[float], list[float]]:
    """Stand-in for the robot's state: an end-effector position and joint angles."""
    position = [0.4 + 0.1 * math.cos(t), 0.1 * math.sin(t), 0.3]
    angles = [0.5 * math.sin(t + j) for j in range(JOINTS)]
    return position, angles


def main(seconds: float = 10.0) -> None:
    with SyncRobotClient(GATEWAY, ROBOT, token=TOKEN) as client:
        client.start_session(SessionConfig(sensors=("pose", "joints"), rates_hz={"pose": RATE_HZ}))
        period = 1.0 / RATE_HZ
        next_tick = time.monotonic()
        for _ in range(int(seconds * RATE_HZ)):
            now = time.time()
            (x, y, z), angles = read_robot(now)
            client.send("time_series", {
                "t": [0],  # one sample, 0 µs after the envelope's timestamp
                "pose": {"position": {"x": [x], "y": [y], "z": [z]},
                         "orientation": {"x": [0.0], "y": [0.0], "z": [0.0], "w": [1.0]}},
                "joints": {"names": [f"joint_{j}" for j in range(JOINTS)], "angle": [angles]},
            }, timestamp=now)
            next_tick += period
            time.sleep(max(0.0, next_tick - time.monotonic()))
        result = client.flush(timeout_s=10)
        print("all acked" if result else f"{result.unacked_messages} samples wait in the spool")
        stats = client.end_session()
        print(f"session {stats.session_id}: {stats.messages} samples, {stats.bytes} bytes")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)
