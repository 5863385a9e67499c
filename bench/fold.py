"""Window-fold benchmark: the processors' hottest function in the 10-robot run, before and after.

``robostream.processors.aggregations.fold`` folds a batch of samples into the open 1 s / 1 min /
1 h windows of a session. The profile of the 10-robot end-to-end run (bench/PROFILE.md) showed
it taking ~2/3 of the telemetry agent's time: live batches are a few records, and the padded
all-at-once path (``_fold_segments``, the code before the fix) pays ~20 NumPy calls of overhead
per call. The fix folds up to ``FEW_SEGMENTS`` segments one by one (``_fold_segment``). Both
paths run here side by side, on the same data, in the same process; they are bit-identical
(tests/unit/test_bench_fold_fastpath.py).

    python bench/fold.py            # ~20 s
    python bench/fold.py --quick    # the smoke test
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import _common
import numpy as np
from _common import RESULTS, median_spread, write_json

from robostream.processors.aggregations import Window, _fold_segments, fold

DEFAULT_OUT = RESULTS / "fold.json"
METRICS = 49  # pose, joints, IMU, gripper: the simulator's 100 Hz record
#: (name, segments, samples): one record in one window; a record crossing a 1 s boundary;
#: a take() of 10 records; a catch-up batch (falls back to the padded path: same speed)
CASES = (("1 record, 1 window", 1, 10), ("1 record, 2 windows", 2, 10),
         ("10 records, 1 window", 1, 100), ("100 records, 10 windows", 10, 1000))

Fold = Callable[[Sequence[Window], np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]


def per_call_us(fn: Fold, segments: int, samples: int, calls: int) -> float:
    rng = np.random.default_rng(segments * 1000 + samples)
    windows = [Window.empty(k, METRICS) for k in range(segments)]
    values = rng.normal(size=(METRICS, samples))
    values[rng.random(values.shape) < 0.01] = np.nan
    times = np.arange(samples, dtype=np.int64) * 10_000
    bounds = np.linspace(0, samples, segments + 1).astype(np.int64)
    slots = np.arange(METRICS)
    started = time.perf_counter()
    for _ in range(calls):
        fn(windows, slots, values, times, bounds)
    return (time.perf_counter() - started) / calls * 1e6


def measure(calls: int, repeats: int) -> dict[str, Any]:
    """Per case: µs per call of both paths, interleaved, ``repeats`` times; median and spread."""
    out = {}
    for name, segments, samples in CASES:
        before, after = [], []
        for _ in range(repeats):
            before.append(per_call_us(_fold_segments, segments, samples, calls))
            after.append(per_call_us(fold, segments, samples, calls))
        ratios = [b / a for b, a in zip(before, after, strict=True)]
        out[name] = {"segments": segments, "samples": samples, "before_us": median_spread(before),
                     "after_us": median_spread(after), "speedup": median_spread(ratios)}
    return out


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few calls (smoke test)")
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved runs of each path")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.calls, args.repeat = 20, 2
    results = measure(args.calls, args.repeat)
    report = _common.report("fold", {"quick": args.quick, "calls": args.calls, "repeat": args.repeat,
                                     "metrics": METRICS}, results, _common.versions("robostream", "numpy"))
    write_json(report, args.out)
    _common.print_table(
        "processors window fold: before (padded, all at once) vs after (per segment), same data",
        ["case", "before µs/call", "after µs/call", "speedup"],
        [[name, _common.fmt_spread(r["before_us"]), _common.fmt_spread(r["after_us"]),
          _common.fmt_spread(r["speedup"], 2, "x")] for name, r in results.items()])
    print(f"written: {args.out}")
    return report


if __name__ == "__main__":
    run()
