"""The simulated arm moves like a real one: smooth, consistent derivatives, within its limits."""

from __future__ import annotations

import numpy as np

from robostream.simulator.robot import GRAVITY, JOINT_LIMITS, RobotModel

RATE_HZ = 100.0
T = np.arange(0, 60, 1 / RATE_HZ)


def test_joint_velocity_is_the_derivative_of_the_angle() -> None:
    angle, velocity, _ = RobotModel(seed=3).joint_state(T)
    numeric = np.gradient(angle, 1 / RATE_HZ, axis=0)
    assert np.max(np.abs(numeric[1:-1] - velocity[1:-1])) < 1e-3


def test_joint_motion_is_smooth_with_bounded_jerk() -> None:
    angle, _, _ = RobotModel(seed=4).joint_state(T)
    jerk = np.diff(angle, n=3, axis=0) * RATE_HZ**3
    assert np.max(np.abs(jerk)) < 5.0  # rad/s³: nothing like white noise (which would be ~1e5)
    step = np.abs(np.diff(angle, axis=0))
    assert np.max(step) < 0.02  # at most ~2 rad/s


def test_joints_stay_within_their_limits() -> None:
    for seed in range(10):
        angle, _, _ = RobotModel(seed).joint_state(T)
        assert np.all(np.abs(angle) < JOINT_LIMITS)


def test_torques_are_plausible_for_an_arm() -> None:
    _, _, torque = RobotModel(seed=5).joint_state(T)
    assert 5 < np.max(np.abs(torque[:, 1])) < 60  # shoulder carries the arm's weight
    assert np.max(np.abs(torque[:, 6])) < 5  # the wrist does not


def test_orientations_are_unit_quaternions_and_the_pose_is_smooth() -> None:
    model = RobotModel(seed=6)
    position, orientation = model.pose(T)
    assert np.allclose(np.linalg.norm(orientation, axis=1), 1.0)
    jerk = np.diff(position, n=3, axis=0) * RATE_HZ**3
    assert np.max(np.abs(jerk)) < 1.0


def test_the_imu_feels_gravity_and_the_motion() -> None:
    accel, gyro, _ = RobotModel(seed=7).imu(T)
    magnitude = np.linalg.norm(accel, axis=1)
    assert np.all(np.abs(magnitude - GRAVITY) < 1.0)
    assert np.max(np.abs(gyro)) < 2.0 and np.std(gyro[:, 2]) > 0.01


def test_the_wrist_feels_the_payload_and_the_grasps() -> None:
    force, _ = RobotModel(seed=8).force_torque(T)
    assert np.median(np.linalg.norm(force, axis=1)) > 5  # ~0.9 kg payload
    assert np.max(force[:, 2]) - np.min(force[:, 2]) > 10  # contacts


def test_system_metrics_stay_in_range() -> None:
    cpu, memory, latency = RobotModel(seed=9).metrics(T)
    assert np.all((cpu >= 0) & (cpu <= 100)) and np.all(memory > 0) and np.all(latency > 0)


def test_robots_differ_by_seed() -> None:
    a, _, _ = RobotModel(1).joint_state(T[:10])
    b, _, _ = RobotModel(2).joint_state(T[:10])
    assert not np.allclose(a, b)
