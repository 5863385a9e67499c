"""A robot simulator at the seed's rates, built on the robot SDK (``robostream_sdk``).

``robostream simulate --robots 3 --duration 300`` runs :func:`run_simulation`: per robot 100 Hz
pose/joints/IMU, 30 Hz force/torque, 1 Hz system metrics, camera bursts (RGB JPEG, 16-bit depth
PNG, PLY point clouds), a log line a second, the other data types in turn, and RPC answers.
See ``docs/simulator.md``.
"""

from robostream.simulator.options import RobotPlan, SimulationOptions
from robostream.simulator.runner import (
    RobotReport,
    SimulatedRobot,
    SimulationReport,
    run_simulation,
)
from robostream.simulator.schedule import RealClock, VirtualClock

__all__ = [
    "RealClock",
    "RobotPlan",
    "RobotReport",
    "SimulatedRobot",
    "SimulationOptions",
    "SimulationReport",
    "VirtualClock",
    "run_simulation",
]
