"""A simulated 7-DOF arm: smooth joint motion, end-effector pose, IMU, wrist force/torque, metrics.

Every signal is a closed-form function of time (sums of sinusoids with random amplitudes,
frequencies and phases per robot), so velocities and accelerations are exact derivatives:
joint velocity is d(angle)/dt, torque follows inertia x acceleration + damping x velocity +
gravity, the IMU reads the pose's second derivative plus gravity in the sensor frame, and the
wrist sensor feels the payload's weight and inertia plus smooth grasp contacts. Nothing is white
noise, and jerk is bounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

DOF = 7
GRAVITY = 9.81
JOINT_NAMES = tuple(f"joint_{j}" for j in range(DOF))
#: Joint limits (rad), a Franka-like arm.
JOINT_LIMITS = np.array([2.90, 1.76, 2.90, 3.07, 2.90, 3.75, 2.90])
_INERTIA = np.array([0.60, 0.55, 0.35, 0.30, 0.12, 0.10, 0.05])  # kg·m²
_DAMPING = np.array([0.90, 0.90, 0.60, 0.60, 0.30, 0.20, 0.10])  # N·m·s/rad
_GRAVITY_LOAD = np.array([0.0, 28.0, 0.0, 14.0, 0.0, 2.5, 0.0])  # N·m at horizontal
_PAYLOAD_KG = 0.9
_SENSOR_TO_COM = 0.08  # m, payload centre of mass below the wrist sensor
_GRASP_PERIOD_S = 8.0

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Harmonics:
    """``offset + Σ_k amp_k sin(2π freq_k t + phase_k)`` per column, with exact derivatives."""

    offset: Array  # (cols,)
    amp: Array  # (k, cols)
    freq: Array  # (k, cols), Hz
    phase: Array  # (k, cols)

    def derivative(self, t: Array, order: int = 0) -> Array:
        """The ``order``-th time derivative at times ``t`` (n,) -> (n, cols)."""
        omega = 2 * math.pi * self.freq
        arg = omega[None] * t[:, None, None] + self.phase[None]
        shifted = np.sin(arg + order * math.pi / 2)  # d/dt sin(x) = cos(x) = sin(x + π/2)
        value = (self.amp[None] * omega[None] ** order * shifted).sum(axis=1)
        return value + self.offset[None] if order == 0 else value


def _harmonics(rng: np.random.Generator, cols: int, reach: Array, *, offset: Array | None = None,
               fmin: float = 0.05, fmax: float = 0.25, terms: int = 2) -> Harmonics:
    weights = rng.uniform(0.4, 1.0, size=(terms, cols))
    amp = reach[None] * weights / weights.sum(axis=0, keepdims=True)
    return Harmonics(
        offset=np.zeros(cols) if offset is None else offset,
        amp=amp,
        freq=rng.uniform(fmin, fmax, size=(terms, cols)),
        phase=rng.uniform(0, 2 * math.pi, size=(terms, cols)),
    )


def quaternion_from_euler(roll: Array, pitch: Array, yaw: Array) -> Array:
    """ZYX Euler angles -> quaternions (x, y, z, w), shape (n, 4)."""
    cr, sr = np.cos(roll / 2), np.sin(roll / 2)
    cp, sp = np.cos(pitch / 2), np.sin(pitch / 2)
    cy, sy = np.cos(yaw / 2), np.sin(yaw / 2)
    return np.stack([sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy,
                     cr * cp * sy - sr * sp * cy, cr * cp * cy + sr * sp * sy], axis=1)


def rotation_from_euler(roll: Array, pitch: Array, yaw: Array) -> Array:
    """ZYX Euler angles -> body-to-world rotation matrices, shape (n, 3, 3)."""
    cr, sr = np.cos(roll), np.sin(roll)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    return np.stack([
        np.stack([cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr], axis=1),
        np.stack([sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr], axis=1),
        np.stack([-sp, cp * sr, cp * cr], axis=1),
    ], axis=1)


def _periodic_bump(t: Array, period: float, sharpness: float, phase: float) -> Array:
    """A smooth 0..1 pulse once per ``period`` (von Mises shape)."""
    return np.exp(sharpness * (np.cos(2 * math.pi * (t / period) + phase) - 1))


class RobotModel:
    """One robot's signals as functions of session time ``t`` (seconds)."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.joints = _harmonics(rng, DOF, 0.55 * JOINT_LIMITS,
                                 offset=rng.uniform(-0.2, 0.2, DOF) * JOINT_LIMITS, fmin=0.04, fmax=0.2)
        self.position = _harmonics(rng, 3, np.array([0.18, 0.15, 0.08]),
                                   offset=np.array([0.45, 0.0, 0.40]), fmin=0.05, fmax=0.15)
        self.attitude = _harmonics(rng, 3, np.array([0.15, 0.15, 0.6]),
                                   offset=np.array([math.pi, 0.0, 0.0]), fmin=0.03, fmax=0.12)
        self.load = _harmonics(rng, 3, np.array([12.0, 6.0, 3.0]),
                               offset=np.array([35.0, 812.0, 4.0]), fmin=1 / 120, fmax=1 / 15, terms=3)
        self.grasp_phase = float(rng.uniform(0, 2 * math.pi))

    # -- joints ----------------------------------------------------------------------------------

    def joint_state(self, t: Array) -> tuple[Array, Array, Array]:
        """Angle (rad), velocity (rad/s) and torque (N·m), each (n, 7)."""
        angle = self.joints.derivative(t, 0)
        velocity = self.joints.derivative(t, 1)
        acceleration = self.joints.derivative(t, 2)
        torque = (_INERTIA * acceleration + _DAMPING * velocity + _GRAVITY_LOAD * np.cos(angle)
                  + self.grasp(t)[:, None] * _GRAVITY_LOAD * 0.05)
        return angle, velocity, torque

    # -- end effector ----------------------------------------------------------------------------

    def euler(self, t: Array, order: int = 0) -> Array:
        """Roll, pitch, yaw of the end effector (or their derivatives), (n, 3)."""
        return self.attitude.derivative(t, order)

    def pose(self, t: Array) -> tuple[Array, Array]:
        """Position (m), (n, 3), and orientation quaternion (x, y, z, w), (n, 4)."""
        rpy = self.euler(t)
        return self.position.derivative(t, 0), quaternion_from_euler(rpy[:, 0], rpy[:, 1], rpy[:, 2])

    def imu(self, t: Array) -> tuple[Array, Array, Array]:
        """Linear acceleration (m/s², gravity included) and angular velocity (rad/s) in the sensor
        frame, and the orientation, each per sample."""
        rpy, rates = self.euler(t), self.euler(t, 1)
        roll, pitch, yaw = rpy[:, 0], rpy[:, 1], rpy[:, 2]
        rot = rotation_from_euler(roll, pitch, yaw)
        specific = self.position.derivative(t, 2) + np.array([0.0, 0.0, GRAVITY])
        accel = np.einsum("nji,nj->ni", rot, specific)  # R^T · (a + g)
        dr, dp, dy = rates[:, 0], rates[:, 1], rates[:, 2]
        gyro = np.stack([dr - dy * np.sin(pitch),
                         dp * np.cos(roll) + dy * np.sin(roll) * np.cos(pitch),
                         -dp * np.sin(roll) + dy * np.cos(roll) * np.cos(pitch)], axis=1)
        return accel, gyro, quaternion_from_euler(roll, pitch, yaw)

    def grasp(self, t: Array) -> Array:
        """0..1: how firmly the gripper presses on something (a smooth contact every 8 s)."""
        return _periodic_bump(t, _GRASP_PERIOD_S, 6.0, self.grasp_phase)

    def force_torque(self, t: Array) -> tuple[Array, Array]:
        """Wrist force (N) and torque (N·m) in the sensor frame, (n, 3) each."""
        accel, _, _ = self.imu(t)
        contact = self.grasp(t)
        force = -_PAYLOAD_KG * accel
        force[:, 2] -= 18.0 * contact  # pushing down on the object
        force[:, 0] += 2.5 * contact * np.sin(2 * math.pi * 0.5 * t)
        torque = np.stack([_SENSOR_TO_COM * force[:, 1], -_SENSOR_TO_COM * force[:, 0],
                           0.15 * contact * np.cos(2 * math.pi * 0.5 * t)], axis=1)
        return force, torque

    # -- system ----------------------------------------------------------------------------------

    def metrics(self, t: Array) -> tuple[Array, Array, Array]:
        """CPU (%), memory (MB) and network latency (ms), slowly varying."""
        load = self.load.derivative(t)
        cpu = np.clip(load[:, 0] + 8.0 * self.grasp(t), 1.0, 100.0)
        memory = load[:, 1] + 0.02 * t
        latency = np.maximum(0.3, load[:, 2])
        return cpu, memory, latency

    def gripper_width(self, t: Array) -> Array:
        """Gripper opening (m): closes on each grasp."""
        return 0.08 - 0.06 * self.grasp(t)


def _xyz(values: Array) -> dict[str, list[float]]:
    return {"x": values[:, 0].tolist(), "y": values[:, 1].tolist(), "z": values[:, 2].tolist()}


def _quat(values: Array) -> dict[str, list[float]]:
    return {**_xyz(values), "w": values[:, 3].tolist()}


def time_series_payload(model: RobotModel, streams: tuple[str, ...], times: Array) -> dict[str, Any]:
    """A columnar ``time_series`` payload of ``streams`` at ``times`` (session seconds)."""
    offsets = np.rint((times - times[0]) * 1_000_000).astype(np.int64)
    payload: dict[str, Any] = {"t": offsets.tolist()}
    if "pose" in streams:
        position, orientation = model.pose(times)
        payload["pose"] = {"position": _xyz(position), "orientation": _quat(orientation)}
        payload["channels"] = {"gripper_width": model.gripper_width(times).tolist()}
        payload["units"] = {"gripper_width": "m"}
    if "joints" in streams:
        angle, velocity, torque = model.joint_state(times)
        payload["joints"] = {"names": list(JOINT_NAMES), "angle": angle.tolist(),
                             "velocity": velocity.tolist(), "torque": torque.tolist()}
    if "imu" in streams:
        accel, gyro, orientation = model.imu(times)
        payload["imu"] = {"linear_acceleration": _xyz(accel), "angular_velocity": _xyz(gyro),
                          "orientation": _quat(orientation)}
    if "force_torque" in streams:
        force, torque = model.force_torque(times)
        payload["force_torque"] = {"force": _xyz(force), "torque": _xyz(torque)}
    if "metrics" in streams:
        cpu, memory, latency = model.metrics(times)
        payload["metrics"] = {"cpu_percent": cpu.tolist(), "memory_mb": memory.tolist(),
                              "network_latency_ms": latency.tolist()}
    return payload
