"""The profile-guided fix of the benchmark suite (BENCHMARKS.md, "profile and fix"): the processors'
window fold takes a per-segment path for the live case (a few segments). It must give the very
same window state, bit for bit, as the padded all-at-once path it replaced, whatever the batching.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robostream.processors.aggregations import FEW_SEGMENTS, Window, _fold_segments, fold

METRICS = 12
ROOT = Path(__file__).resolve().parents[2]


def _state(window: Window) -> list[bytes]:
    return [getattr(window, name).tobytes() for name in Window._ARRAYS]


def _batches(seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Successive batches: (slots, values with NaN gaps and whole missing rows, times, bounds)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(8):
        samples = int(rng.integers(1, 40))
        slots = np.sort(rng.choice(METRICS, size=int(rng.integers(1, METRICS + 1)), replace=False))
        values = rng.normal(1e3, 5.0, size=(slots.shape[0], samples)) * rng.choice([1, -1, 1e-9], size=(1, 1))
        values[rng.random(values.shape) < 0.2] = np.nan
        if slots.shape[0] > 1:
            values[0] = np.nan  # a metric without a sample in this batch
        cuts = np.sort(rng.choice(np.arange(1, samples), size=min(samples - 1, int(rng.integers(0, 3))),
                                  replace=False)) if samples > 1 else np.array([], np.int64)
        bounds = np.concatenate([[0], cuts, [samples]]).astype(np.int64)
        times = np.arange(samples, dtype=np.int64) * 10_000 + int(rng.integers(0, 1000))
        out.append((slots, values, times, bounds))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_few_segment_fold_is_bit_identical_to_the_padded_fold(seed: int) -> None:
    fast = [Window.empty(k, METRICS) for k in range(3)]
    padded = [Window.empty(k, METRICS) for k in range(3)]
    for slots, values, times, bounds in _batches(seed):
        segments = bounds.shape[0] - 1
        assert segments <= FEW_SEGMENTS
        fold(fast[:segments], slots, values, times, bounds)
        _fold_segments(padded[:segments], slots, values, times, bounds)
        for a, b in zip(fast, padded, strict=True):
            assert _state(a) == _state(b)
    assert any(int(w.count.sum()) > 0 for w in fast)


def test_bench_fold_quick(tmp_path: Path) -> None:
    out = tmp_path / "fold.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "fold.py"), "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"1 record, 1 window", "1 record, 2 windows", "10 records, 1 window",
                            "100 records, 10 windows"}
    assert all(r["speedup"]["median"] > 0 for r in results.values())
    assert "speedup" in done.stdout
