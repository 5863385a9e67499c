"""What a simulated robot answers when the gateway forwards an RPC request to it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from robostream.producers import RpcError
from robostream.simulator.robot import JOINT_NAMES, RobotModel

METHODS = ("ping", "get_status", "get_joint_state", "set_parameter", "get_parameters")


class RobotRpc:
    """RPC methods of one simulated robot: ``ping``, ``get_status``, ``get_joint_state``,
    ``set_parameter`` and ``get_parameters``; anything else is an ``unknown_method`` error."""

    def __init__(self, robot_id: str, model: RobotModel, session_time: Callable[[], float],
                 status: Callable[[], dict[str, Any]]) -> None:
        self.robot_id = robot_id
        self.model = model
        self.session_time = session_time
        self.status = status
        self.parameters: dict[str, Any] = {"speed_scale": 1.0, "gripper_force_n": 20.0}
        self.calls = 0

    async def __call__(self, method: str, params: Any) -> Any:
        self.calls += 1
        if method == "ping":
            return {"pong": True, "robot_id": self.robot_id, "time": time.time()}
        if method == "get_status":
            return {"robot_id": self.robot_id, "t": round(self.session_time(), 3), **self.status()}
        if method == "get_joint_state":
            angle, velocity, torque = self.model.joint_state(np.array([self.session_time()]))
            return {"names": list(JOINT_NAMES), "angle": angle[0].tolist(), "velocity": velocity[0].tolist(),
                    "torque": torque[0].tolist()}
        if method == "set_parameter":
            return self._set(params)
        if method == "get_parameters":
            return dict(self.parameters)
        raise RpcError("unknown_method", f"{self.robot_id} knows {', '.join(METHODS)}; not {method!r}")

    def _set(self, params: Any) -> dict[str, Any]:
        if not isinstance(params, dict) or not isinstance(params.get("name"), str) or "value" not in params:
            raise RpcError("invalid_params", "set_parameter takes {name: str, value: any}")
        previous = self.parameters.get(params["name"])
        self.parameters[params["name"]] = params["value"]
        return {"ok": True, "name": params["name"], "value": params["value"], "previous": previous}
