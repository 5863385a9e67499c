"""Answer RPC calls from the platform (``robostream rpc call robot_001 ping``, or
``POST /v1/robots/robot_001/rpc``) while streaming. WebSocket transport only.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from _common import GATEWAY, ROBOT, TOKEN

from robostream_sdk import RobotClient, RpcError

SPEED = {"value": 0.5}
METHODS = ("ping", "get_speed", "set_speed")


async def handler(method: str, params: Any) -> Any:
    """One RPC: the return value is the answer; ``RpcError`` is an error answer with a code."""
    if method == "ping":
        return {"pong": True, "time": time.time()}
    if method == "get_speed":
        return SPEED
    if method == "set_speed":
        value = (params or {}).get("value")
        if not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise RpcError("invalid_params", "set_speed needs {'value': a number from 0 to 1}")
        SPEED["value"] = float(value)
        return SPEED
    raise RpcError.unknown_method(method, METHODS)


async def main() -> None:
    async with RobotClient(GATEWAY, ROBOT, token=TOKEN, rpc_handler=handler) as client:
        await client.start_session()
        print(f"{ROBOT} answers {', '.join(METHODS)}; Ctrl-C to stop")
        while True:  # RPC needs an open connection: keep streaming (here, a heartbeat log line)
            await client.send("log", {"level": "debug", "message": f"speed {SPEED['value']}"})
            await asyncio.sleep(1.0)


if __name__ == "__main__":
    asyncio.run(main())
