"""``bench/api.py --quick`` runs end to end against the test stack (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from robostream.config import Settings

ROOT = Path(__file__).resolve().parents[3]


def test_api_bench_runs_quick(settings: Settings, stack: object, tmp_path: Path) -> None:
    out = tmp_path / "api.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "api.py"), "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["parameters"]["quick"] is True and report["parameters"]["points"] == 12_000
    results = report["results"]
    assert set(results) == {"range", "aggregations", "frames", "live"}
    assert results["range"]["whole range, every channel, ndjson"]["rows"] == 12_000
    assert results["range"]["whole range, pose, columns"]["rows"] == 12_000  # samples in the pose blocks
    assert results["range"]["whole range, max_points=60"]["rows"] <= 60
    assert results["range"]["whole range, max_points=60"]["source"] == "lod"
    for group in ("range", "aggregations", "frames"):
        assert all(row["n"] > 0 for row in results[group].values())
    assert results["live"]["messages"] > 0
    assert "robot -> WS client" in done.stdout
