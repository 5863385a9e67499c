"""``bench/gateway.py --quick`` runs end to end against the test stack (no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from robostream.config import Settings

ROOT = Path(__file__).resolve().parents[3]


def test_gateway_bench_runs_quick(
    settings: Settings, kafka_bootstrap: str, registry_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "gateway.json"
    env = {**os.environ, "ROBOSTREAM_SCHEMA_REGISTRY__URL": registry_url}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gateway.py"), "--quick", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"time_series", "time_series_lists", "images"}
    for result in report["results"].values():
        assert [row["connections"] for row in result["gateway"]] == [1, 2]
        assert all(row["messages"] > 0 and row["ratio"] > 0 for row in result["gateway"])
        assert result["direct"]["msgs_per_s"] > 0
    assert "ratio" in done.stdout
