"""What a simulation run does: robots, duration, endpoint, rates and media, from config + CLI."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from robostream.config import RateSettings, RobotSettings, Settings, SimulatorSettings, validate_id
from robostream.simulator.camera import parse_resolution
from robostream_sdk import ClientOptions, gateway_url_from


@dataclass(frozen=True, slots=True)
class RobotPlan:
    """One simulated robot: its id, cameras, token and random seed."""

    robot_id: str
    index: int
    cameras: tuple[str, ...]
    token: str | None
    seed: int


@dataclass(frozen=True)
class SimulationOptions:
    """A simulation run. Build one with :meth:`from_settings`."""

    robots: tuple[RobotPlan, ...]
    duration_s: float
    gateway_url: str
    rates: RateSettings
    sim: SimulatorSettings
    client: ClientOptions
    media: bool = True
    progress: bool = True
    end_timeout_s: float = 30.0  # waiting for the last acks at the end
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def resolution(self) -> tuple[int, int]:
        return parse_resolution(self.rates.resolution)

    @property
    def camera_count(self) -> int:
        return sum(len(r.cameras) for r in self.robots)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, robots: int = 3, duration_s: float = 300.0,
        gateway_url: str | None = None, transport: Literal["ws", "https"] | None = None,
        media: bool | None = None, resolution: str | None = None, spool_dir: Path | None = None,
        tokens: dict[str, str] | None = None, progress: bool = True,
        ssl_context: ssl.SSLContext | None = None, **client: Any,
    ) -> SimulationOptions:
        """Options from ``config.yaml`` (simulator, rates, batching, robots), then the overrides."""
        sim = settings.simulator
        rates = settings.rates if resolution is None else settings.rates.model_copy(
            update={"resolution": RateSettings.model_validate({"resolution": resolution}).resolution})
        known = {**load_tokens(sim.tokens_file), **(tokens or {})}
        plans = tuple(_plan(settings.robots, i, sim.seed, known) for i in range(robots))
        client_options = ClientOptions.from_settings(
            settings, transport=transport or sim.transport,
            ssl_context=ssl_context or client_ssl(sim.ca_file), **client,
        )
        if spool_dir is not None:
            client_options = replace(client_options, spool_dir=spool_dir)
        return cls(
            robots=plans, duration_s=duration_s,
            gateway_url=gateway_url or sim.gateway_url or gateway_url_from(settings),
            rates=rates, sim=sim, client=client_options, media=sim.media if media is None else media,
            progress=progress,
        )


def _plan(configured: list[RobotSettings], index: int, seed: int, tokens: dict[str, str]) -> RobotPlan:
    if index < len(configured):
        robot = configured[index]
        robot_id, cameras = robot.id, tuple(robot.cameras)
    else:  # more robots than config.yaml lists: robot_004, robot_005 ...
        robot_id, cameras = f"robot_{index + 1:03d}", ("front",)
    return RobotPlan(validate_id(robot_id, "robot_id"), index, cameras, tokens.get(robot_id), seed + index)


def load_tokens(path: Path | None) -> dict[str, str]:
    """Plaintext robot tokens from a YAML ``{robot_id: token}`` file (development only)."""
    if path is None:
        return {}
    data = yaml.safe_load(Path(path).read_text("utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"tokens file {path}: expected a map robot_id: token")
    return {str(k): str(v) for k, v in data.items()}


def client_ssl(ca_file: Path | None) -> ssl.SSLContext | None:
    """A TLS context trusting ``ca_file`` (a self-signed gateway certificate), or None (system CAs)."""
    if ca_file is None:
        return None
    return ssl.create_default_context(cafile=str(ca_file))
