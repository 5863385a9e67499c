"""What a simulated robot answers when the gateway forwards an RPC request to it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from robostream.simulator.camera import DEFAULT_EXPOSURE_MS
from robostream.simulator.robot import JOINT_NAMES, RobotModel
from robostream_sdk import RpcError

METHODS = ("ping", "get_status", "get_joint_state", "set_parameter", "get_parameters",
           "camera.set_exposure")
EXPOSURE_RANGE_MS = (0.05, 1000.0)


class RobotRpc:
    """RPC methods of one simulated robot: ``ping``, ``get_status``, ``get_joint_state``,
    ``set_parameter``, ``get_parameters`` and ``camera.set_exposure``; anything else is an
    ``unknown_method`` error. ``exposure_ms`` (per camera) is read by the robot's renderers."""

    def __init__(self, robot_id: str, model: RobotModel, session_time: Callable[[], float],
                 status: Callable[[], dict[str, Any]], cameras: tuple[str, ...] = ("front",)) -> None:
        self.robot_id = robot_id
        self.model = model
        self.session_time = session_time
        self.status = status
        self.parameters: dict[str, Any] = {"speed_scale": 1.0, "gripper_force_n": 20.0}
        self.exposure_ms: dict[str, float] = dict.fromkeys(cameras, DEFAULT_EXPOSURE_MS)
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
        if method == "camera.set_exposure":
            return self._set_exposure(params)
        raise RpcError.unknown_method(method, METHODS)

    def _set(self, params: Any) -> dict[str, Any]:
        if not isinstance(params, dict) or not isinstance(params.get("name"), str) or "value" not in params:
            raise RpcError("invalid_params", "set_parameter takes {name: str, value: any}")
        previous = self.parameters.get(params["name"])
        self.parameters[params["name"]] = params["value"]
        return {"ok": True, "name": params["name"], "value": params["value"], "previous": previous}

    def _set_exposure(self, params: Any) -> dict[str, Any]:
        """``{exposure_ms: number, camera?: id}`` (default camera: the first) -> the new exposure."""
        low, high = EXPOSURE_RANGE_MS
        cameras = ", ".join(self.exposure_ms) or "none"
        usage = f"camera.set_exposure takes {{exposure_ms: {low:g}..{high:g}, camera: {cameras}}}"
        if not isinstance(params, dict) or set(params) - {"exposure_ms", "camera"}:
            raise RpcError("invalid_params", usage)
        camera = params.get("camera", next(iter(self.exposure_ms), None))
        exposure = params.get("exposure_ms")
        if camera not in self.exposure_ms:
            raise RpcError("invalid_params", f"{self.robot_id} has no camera {camera!r}; {usage}")
        if isinstance(exposure, bool) or not isinstance(exposure, int | float) or not low <= exposure <= high:
            raise RpcError("invalid_params", f"exposure_ms must be a number from {low:g} to {high:g}, "
                           f"got {exposure!r:.40}")
        previous = self.exposure_ms[camera]
        self.exposure_ms[camera] = float(exposure)
        return {"camera": camera, "exposure_ms": float(exposure), "previous_ms": previous}
