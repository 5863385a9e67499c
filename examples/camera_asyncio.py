"""Stream a camera from an asyncio program: each frame is an ``images`` envelope with JPEG bytes.

Replace ``grab_jpeg`` with your camera driver (OpenCV ``cv2.imencode(".jpg", frame)``, a ROS 2
``CompressedImage``'s ``data``, a GStreamer appsink ...).
"""

from __future__ import annotations

import asyncio
import sys
import time

from _common import GATEWAY, ROBOT, TOKEN

from robostream_sdk import CameraConfig, RobotClient, SessionConfig

FPS = 10
WIDTH, HEIGHT = 640, 360


def grab_jpeg(n: int) -> bytes:
    """Stand-in for a camera: a tiny valid JPEG (start and end markers around a counter)."""
    return b"\xff\xd8\xff\xe0" + n.to_bytes(4, "big") + b"\x00" * 512 + b"\xff\xd9"


async def main(seconds: float = 5.0) -> None:
    config = SessionConfig(cameras=(CameraConfig("front", WIDTH, HEIGHT, FPS),), data_types=("images",))
    async with RobotClient(GATEWAY, ROBOT, token=TOKEN) as client:
        await client.start_session(config)
        for n in range(int(seconds * FPS)):
            await client.send("images", {
                "camera_id": "front", "kind": "rgb", "width": WIDTH, "height": HEIGHT,
                "blob": {"format": "jpeg", "content": grab_jpeg(n)},  # size and sha256 are filled in
            }, timestamp=time.time())
            await asyncio.sleep(1 / FPS)
        stats = await client.end_session()  # flushes and waits for the acks
        print(f"session {stats.session_id}: {stats.records} frames, drained={stats.drained}")


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0))
