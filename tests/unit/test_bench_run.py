"""``bench/run.py --report-only`` turns the JSON reports into BENCHMARKS.md (no servers, no runs)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"


def test_report_only_writes_one_table_with_targets_and_spread(tmp_path: Path) -> None:
    results = tmp_path / "results"
    (results / "runs").mkdir(parents=True)
    api = json.loads((RESULTS / "api.json").read_text())
    for k, p50 in enumerate((100.0, 120.0, 110.0), start=1):  # three runs of the API benchmark
        api["results"]["range"]["whole range, pose, columns"]["p50_ms"] = p50
        (results / "runs" / f"api-{k}.json").write_text(json.dumps(api))
    shutil.copy(RESULTS / "sinks.json", results / "sinks.json")
    out = tmp_path / "BENCHMARKS.md"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--report-only", "--results", str(results),
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert text.startswith("# robostream benchmarks") and "The machine was shared" in text
    row = next(line for line in text.splitlines() if "1 h of 100 Hz, every point, pose, columns" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "110.0 ms (+/-9%, 100.0..120.0)"  # median of the three runs, half-spread, min..max
    assert cells[3:5] == ["< 1,000 ms", "< 250 ms"]  # the seed's target, our goal
    lines = text.splitlines()
    assert any(line.startswith("| sinks | mongo sink") and "insert_many" in line for line in lines)
    assert "| api | 3 |" in text  # the runs table: three runs of api
