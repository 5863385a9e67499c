"""``make bench``'s driver and the end-to-end benchmark run on tiny input against the test stack.

``bench/run.py --only e2e --quick`` runs ``bench/e2e.py --quick`` (1 robot, 5 s, telemetry only:
gateway, sinks, processors and API as child processes under a prefix of their own), then writes
the markdown a user reads. Only that the rows are there and nothing was lost is asserted, plus a
bound on the 1 Hz metric's live latency loose enough for a loaded machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from robostream.config import Settings

ROOT = Path(__file__).resolve().parents[3]
SERVICES = {"gateway", "sinks", "sinks-live", "processors", "api"}  # the stack's default layout


def test_bench_run_e2e_quick(stack: object, registry_url: str, settings: Settings, tmp_path: Path) -> None:
    results, markdown = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--only", "e2e", "--quick",
         "--results", str(results), "--out", str(markdown)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-4000:]

    report = json.loads((results / "e2e.json").read_text())
    assert report["parameters"]["quick"] is True
    assert {"machine", "versions"} <= report.keys()
    [case] = report["results"]["cases"]
    assert (case["robots"], case["media"]) == (1, False)
    assert case["lost"] == 0 and case["sdk_lost"] == 0
    assert case["messages_acked"] > 0 and case["msgs_per_s"] > 0
    assert case["telemetry_records_in_mongo"] == case["telemetry_records_acked"] > 0
    assert len(case["lag_at_end"]) == 5  # four connectors + the processors' group
    assert set(case["cpu_percent"]) == SERVICES | {"simulator"}
    assert set(case["peak_rss_mb"]) >= SERVICES and all(v > 0 for v in case["peak_rss_mb"].values())
    assert {"kafka_produce", "kafka_consume", "mongo_insert_many", "ratios"} <= case["ceilings"].keys()
    # the ceiling consumer reads the topics after the count: a late record (session end) may add one
    assert case["ceilings"]["kafka_consume"]["records"] >= case["records_in_kafka"]
    assert "lost" in done.stdout and "ceil produce" in done.stdout
    # A 1 Hz metric reaches the live client as soon as it exists (it used to wait 500 ms for
    # company in its record). The real target (< 100 ms) is the benchmark's; this bound only has
    # to hold on a loaded CI machine.
    slow = case["live"]["metrics_1hz"]
    assert slow["n"] >= 3 and slow["p50_ms"] < 300, slow

    text = markdown.read_text()
    assert "The machine was shared" in text
    rows = [line for line in text.splitlines() if line.startswith("| e2e 1 robot, telemetry")]
    lost = next(r for r in rows if "lost (acked, not in Kafka / MongoDB)" in r)
    assert lost.split("|")[3].strip() == "0"
    assert any("sustained messages/s" in r for r in rows)
    assert any("live robot -> API WS client" in r for r in rows)
