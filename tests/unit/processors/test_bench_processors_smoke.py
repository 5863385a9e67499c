"""The processors benchmark runs end to end on small input (in-process figures; no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_bench_processors_quick(tmp_path: Path) -> None:
    out = tmp_path / "processors.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "processors.py"), "--quick", "--no-kafka", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    results = report["results"]
    assert results["core"]["messages"] == 2000 and results["core"]["windows_out"] > 0
    assert {"rgb.original", "rgb.thumbnail", "depth.original", "pointcloud.original"} <= set(
        results["encode"]["tiers"])
    assert set(results["encode"]["ratios"]) == {"rgb", "depth", "pointcloud"}
    assert report["parameters"]["quick"] is True
    assert "messages/s per worker" in done.stdout
