"""The depth PNG benchmark runs on small input: every encoder it times decodes back to its frames
(the script asserts it before it reports), and the bundle parts open as tar.gz (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_bench_depth_png_quick(tmp_path: Path) -> None:
    out = tmp_path / "depth_png.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "depth_png.py"), "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    encoders = {(r["scene"], r["encoder"], r["level"]) for r in results["png"]}
    assert ("simulator 160x96", "pillow", 6) in encoders
    assert ("synthetic 160x96", "png16 (Sub filter)", 4) in encoders
    assert all(r["bytes_per_frame"] < r["raw_bytes_per_frame"] for r in results["png"])
    assert [r["gzip_level"] for r in results["bundle"]] == [1, 0]
    assert "x pillow 6" in done.stdout
