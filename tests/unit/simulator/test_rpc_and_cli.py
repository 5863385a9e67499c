"""The simulated robot's RPC answers and the ``simulate`` command's options."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from typer.testing import CliRunner

from robostream.cli.simulate_cmd import app
from robostream.config import Settings
from robostream.simulator import SimulationOptions
from robostream.simulator.camera import SceneCamera
from robostream.simulator.robot import RobotModel
from robostream.simulator.rpc import RobotRpc
from robostream_sdk import RpcError


def test_rpc_methods() -> None:
    rpc = RobotRpc("robot_001", RobotModel(1), lambda: 4.2, lambda: {"acked": 3})
    assert asyncio.run(rpc("ping", None))["pong"] is True
    assert asyncio.run(rpc("get_status", None)) == {"robot_id": "robot_001", "t": 4.2, "acked": 3}
    assert len(asyncio.run(rpc("get_joint_state", None))["angle"]) == 7
    assert asyncio.run(rpc("set_parameter", {"name": "speed_scale", "value": 0.5}))["previous"] == 1.0
    assert asyncio.run(rpc("get_parameters", None))["speed_scale"] == 0.5
    with pytest.raises(RpcError) as bad:
        asyncio.run(rpc("self_destruct", None))
    assert bad.value.code == "unknown_method"
    assert bad.value.message.startswith("unknown method 'self_destruct'; this robot answers ping, get_status")
    with pytest.raises(RpcError):
        asyncio.run(rpc("set_parameter", {"value": 1}))
    assert np.isfinite(asyncio.run(rpc("get_joint_state", None))["torque"]).all()


def test_camera_set_exposure_validates_and_applies_to_the_frames() -> None:
    rpc = RobotRpc("robot_001", RobotModel(1), lambda: 0.0, dict, cameras=("front", "wrist"))
    answer = asyncio.run(rpc("camera.set_exposure", {"camera": "wrist", "exposure_ms": 20}))
    assert answer == {"camera": "wrist", "exposure_ms": 20.0, "previous_ms": 10.0}
    assert asyncio.run(rpc("camera.set_exposure", {"exposure_ms": 5}))["camera"] == "front"
    assert rpc.exposure_ms == {"front": 5.0, "wrist": 20.0}
    for bad in ({"exposure_ms": 0}, {"exposure_ms": "8"}, {"exposure_ms": True}, {"camera": "rear",
                "exposure_ms": 8}, {"exposure_ms": 8, "gain": 2}, [8], None):
        with pytest.raises(RpcError) as refused:
            asyncio.run(rpc("camera.set_exposure", bad))
        assert refused.value.code == "invalid_params"
    assert rpc.exposure_ms == {"front": 5.0, "wrist": 20.0}  # refused calls change nothing
    camera = SceneCamera("front", 160, 90, seed=1)
    normal = camera.render(1.0)[0].mean()
    camera.exposure_ms = 5.0
    assert camera.render(1.0)[0].mean() < 0.7 * normal  # half the exposure: a darker frame


def test_options_come_from_config_and_the_command_line(tmp_path: object) -> None:
    settings = Settings()
    options = SimulationOptions.from_settings(settings, robots=5, duration_s=60, transport="https",
                                              resolution="1920x1080", tokens={"robot_002": "t2"})
    assert [r.robot_id for r in options.robots] == [f"robot_00{i}" for i in range(1, 6)]
    assert options.robots[2].cameras == ("front", "wrist") and options.robots[4].cameras == ("front",)
    assert options.robots[1].token == "t2" and options.robots[0].token is None
    assert options.resolution == (1920, 1080) and options.client.transport == "https"
    assert options.gateway_url == "http://127.0.0.1:8080" and options.client.max_messages == 100
    assert options.camera_count == 6


def test_the_command_documents_its_options() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for option in ("--robots", "--duration", "--gateway", "--transport", "--media", "--resolution",
                   "--spool-dir"):
        assert option in result.output
