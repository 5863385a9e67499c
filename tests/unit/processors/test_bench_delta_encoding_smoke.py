"""The delta-encoding benchmark runs on small input, and every scheme decodes back to its frames
(the script refuses to report a scheme that does not round-trip; no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_bench_delta_encoding_quick(tmp_path: Path) -> None:
    out = tmp_path / "delta_encoding.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "delta_encoding.py"), "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())["results"]["rows"]
    by_kind: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        by_kind.setdefault(str(row["kind"]), []).append(row)
    assert set(by_kind) == {"rgb", "depth", "pointcloud"}
    depth_schemes = {str(r["scheme"]) for r in by_kind["depth"]}
    expected = {"png per frame (today)", "png key/3 + zstd delta-prev", "png key/3 + png delta-key"}
    assert expected <= depth_schemes
    assert all(r["lossless"] == "yes" for r in by_kind["depth"])
    today = [r for r in rows if str(r["scheme"]).endswith("(today)")]
    assert today and all(r["vs_today"] == 1.0 for r in today)
    xor = next(r for r in by_kind["pointcloud"] if "xor delta-prev" in str(r["scheme"]))
    assert xor["lossless"] == "yes"
    assert "x today" in done.stdout
