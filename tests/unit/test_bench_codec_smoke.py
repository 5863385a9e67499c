"""The codec benchmark runs end to end (tiny input) and reports every data type."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from robostream.schemas import DataType

ROOT = Path(__file__).resolve().parents[2]


def test_bench_codec_quick(tmp_path: Path) -> None:
    out = tmp_path / "codec.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "codec.py"), "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert set(report["results"]) == {str(dt) for dt in DataType} | {"time_series_packed"}
    for figures in report["results"].values():
        assert set(figures["records_per_s"]) == {
            "ingest",
            "avro_enc",
            "avro_dec",
            "msgpack_pack",
            "msgpack_unpack",
            "orjson_dumps",
            "orjson_loads",
        }
        assert figures["bytes"]["avro_value"] > 5
    assert report["parameters"]["quick"] is True
    assert {"machine", "versions"} <= report.keys()
    assert "time_series" in done.stdout
