"""Build the robot SDK's wheel (``uv build --wheel sdk``), as a robot would get it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def uv() -> str:
    """The uv executable (on PATH, or where its installer puts it)."""
    found = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    if not Path(found).is_file():
        raise FileNotFoundError("uv is needed to build the SDK's wheel (https://docs.astral.sh/uv/)")
    return found


def build_sdk_wheel(out_dir: Path) -> Path:
    """The path of the freshly built ``robostream_sdk-*.whl`` in ``out_dir``."""
    subprocess.run([uv(), "build", "--wheel", "--quiet", str(ROOT / "sdk"), "-o", str(out_dir)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = out_dir.glob("robostream_sdk-*.whl")
    return wheel
