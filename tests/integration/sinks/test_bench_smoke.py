"""The sink benchmark runs end to end on the test stack (tiny input; no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from robostream.config import Settings

ROOT = Path(__file__).resolve().parents[3]


def test_bench_sinks_quick(stack: object, settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "sinks.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "sinks.py"), "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["results"]["sinks"]) == {"mongo", "redis", "s3"}
    assert set(report["results"]["ceilings"]) == {"mongo", "mongo_no_index", "redis", "redis_build", "s3",
                                                  "decode"}
    for figures in report["results"]["sinks"].values():
        assert figures["records_per_s"] > 0
    assert report["parameters"]["quick"] is True
    assert {"machine", "versions"} <= report.keys()
    assert "insert_many" in done.stdout
