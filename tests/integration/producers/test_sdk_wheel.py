"""``pip install robostream-sdk`` on every Python a robot may run (3.9 to 3.13): the wheel alone in
a fresh virtual environment (no NumPy, no orjson, no platform) streams 10,000 samples through the
real gateway, every one acked and in Kafka. And the scripts of ``examples/`` run as a robot runs
them, what they send landing in Kafka."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from robostream.config import Settings
from tests.sdk_wheel import build_sdk_wheel, uv

from .conftest import TOKENS, GatewayRunner, landed

ROBOT = "robot_002"
PYENV = Path.home() / ".pyenv" / "versions"
VERSIONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
ROWS, RECORDS = 100, 100  # 100 time_series records of 100 samples each

#: Runs inside the fresh environment: the robot's loop with the blocking client.
ROBOT_LOOP = """
import json, sys, time
import robostream_sdk
from robostream_sdk import ClientOptions, SyncRobotClient

url, robot, token, spool, rows, records = sys.argv[1:7]
rows, records = int(rows), int(records)
assert "robostream" not in sys.modules and "numpy" not in sys.modules
try:  # HTTPS is the [https] extra (aiohttp), not installed here: a clear sentence, not an ImportError
    SyncRobotClient(url, robot, token=token, options=ClientOptions(transport="https", spool_dir=spool))
    raise SystemExit("transport='https' without aiohttp was accepted")
except robostream_sdk.SdkError as exc:
    assert "robostream-sdk[https]" in str(exc), exc
options = ClientOptions(spool_dir=spool, backoff_initial_s=0.05, backoff_max_s=0.5)
with SyncRobotClient(url, robot, token=token, options=options) as client:
    session = client.start_session()
    start = time.time()
    for i in range(records):
        t = [k * 1000 for k in range(rows)]  # 1 kHz: µs after the envelope's timestamp
        xs = [0.001 * k for k in range(rows)]
        client.send("time_series", {"t": t, "pose": {"position": {"x": xs, "y": xs, "z": xs},
                    "orientation": {"x": xs, "y": xs, "z": xs, "w": [1.0] * rows}}},
                    timestamp=start + i * rows / 1000)
    client.send("log", {"level": "info", "message": "done"})  # a JSON frame, without orjson
    flushed = client.flush(timeout_s=120)
    print(json.dumps({"session": session, "version": robostream_sdk.__version__,
                      "python": sys.version_info[:2], "drained": flushed.drained,
                      **client.counters.snapshot()}))
"""


def interpreter(version: str) -> Path | None:
    """The newest pyenv interpreter of ``version`` (e.g. 3.9 -> ~/.pyenv/versions/3.9.18/bin/python3.9)."""
    found = sorted(PYENV.glob(f"{version}.*/bin/python{version}"),
                   key=lambda p: [int(x) for x in p.parts[-3].split(".") if x.isdigit()])
    return found[-1] if found else None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sdk_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.mark.parametrize("version", VERSIONS)
def test_the_wheel_alone_streams_10k_samples_on_python(
    version: str, wheel: Path, sd_settings: Settings, gateway: GatewayRunner, tmp_path: Path
) -> None:
    python = interpreter(version)
    if python is None:
        pytest.skip(f"no Python {version} interpreter under {PYENV}")
    venv = tmp_path / "venv"
    subprocess.run([uv(), "venv", "--quiet", "--python", str(python), str(venv)], check=True, timeout=120)
    robot_python = venv / "bin" / "python"
    subprocess.run([uv(), "pip", "install", "--quiet", "--python", str(robot_python), str(wheel)],
                   check=True, timeout=300)
    installed = subprocess.run([uv(), "pip", "freeze", "--python", str(robot_python)], check=True,
                               capture_output=True, text=True).stdout
    assert {line.split("==")[0].split(" @ ")[0].lower() for line in installed.splitlines()} == {
        "msgpack", "websockets", "robostream-sdk"}
    out = subprocess.run([str(robot_python), "-c", ROBOT_LOOP, gateway.url, ROBOT, TOKENS[ROBOT],
                          str(tmp_path / "spool"), str(ROWS), str(RECORDS)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.splitlines()[-1])
    assert report["python"] == [int(x) for x in version.split(".")]
    samples = ROWS * RECORDS + 1  # and the log line
    assert report["drained"] and report["acked"] == report["created"] == samples, report
    assert report["lost"] == report["rejected"] == 0
    key = f"{ROBOT}/{report['session']}"
    arrived = landed(sd_settings, decode_telemetry=True)
    assert sorted(arrived.seqs[key]) == list(range(RECORDS + 1))
    assert arrived.rows[key]["pose"] == ROWS * RECORDS


def test_this_interpreter_is_one_of_them() -> None:
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" in VERSIONS


EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
EXAMPLE_ROBOT = "robot_003"


def run_example(script: str, gateway: GatewayRunner, tmp_path: Path, *args: str) -> str:
    env = {**os.environ, "ROBOSTREAM_GATEWAY": gateway.url, "ROBOSTREAM_ROBOT": EXAMPLE_ROBOT,
           "ROBOSTREAM_TOKEN": TOKENS[EXAMPLE_ROBOT]}
    out = subprocess.run([sys.executable, str(EXAMPLES / script), *args], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def session_of(stdout: str) -> str:
    return next(line.split()[1].rstrip(":") for line in stdout.splitlines() if line.startswith("session "))


@pytest.mark.parametrize(("script", "seconds", "data_topic_records"), [
    ("pose_and_joints_loop.py", "0.5", 50),  # 100 Hz
    ("camera_asyncio.py", "0.5", 5),  # 10 fps
])
def test_an_example_streams_into_kafka(script: str, seconds: str, data_topic_records: int,
                                       sd_settings: Settings, gateway: GatewayRunner, tmp_path: Path) -> None:
    stdout = run_example(script, gateway, tmp_path, seconds)
    key = f"{EXAMPLE_ROBOT}/{session_of(stdout)}"
    assert sorted(landed(sd_settings).seqs[key]) == list(range(data_topic_records))


def test_the_rpc_example_answers_and_refuses() -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import answer_rpc

        from robostream_sdk import RpcError

        assert asyncio.run(answer_rpc.handler("set_speed", {"value": 0.25})) == {"value": 0.25}
        with pytest.raises(RpcError) as caught:
            asyncio.run(answer_rpc.handler("dance", None))
        assert caught.value.code == "unknown_method" and "ping" in caught.value.message
    finally:
        sys.path.remove(str(EXAMPLES))
