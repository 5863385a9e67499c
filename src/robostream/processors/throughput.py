"""Per-worker throughput: counters, a periodic log line and an optional JSON status file."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("robostream.processors")


@dataclass
class Throughput:
    """Counters of one worker; ``snapshot()`` adds rates since the previous snapshot.

    Counter names: ``telemetry_records``, ``telemetry_points``, ``buckets_out``, ``windows_out``,
    ``duplicates``, ``late_samples``, ``frames_in``, ``frames_out``, ``dlq``,
    ``encode_seconds.<tier>``, ``encoded_frames.<tier>``, ``source_bytes.<kind>``,
    ``compressed_bytes.<kind>``, ``raw_bytes.<kind>``, ``pool_restarts`` (encoding pool replaced).
    """

    worker: str
    counters: Counter[str] = field(default_factory=Counter)
    floats: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    _last: tuple[float, Counter[str]] | None = None
    assigned: list[str] = field(default_factory=list)
    #: Consumer lag per assigned source ``(topic, partition)``, refreshed with each status.
    lag: dict[tuple[str, int], int] = field(default_factory=dict)

    def add(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

    def add_seconds(self, name: str, seconds: float) -> None:
        self.floats[name] = self.floats.get(name, 0.0) + seconds

    def snapshot(self) -> dict[str, Any]:
        """Totals, per-second rates since the last snapshot, encode fps per tier, assignment."""
        now = time.monotonic()
        since, before = self._last or (self.started, Counter())
        elapsed = max(now - since, 1e-9)
        rates = {k: (v - before.get(k, 0)) / elapsed for k, v in self.counters.items()}
        self._last = (now, Counter(self.counters))
        fps = {
            name.removeprefix("encode_seconds."): self.counters.get(
                "encoded_frames." + name.removeprefix("encode_seconds."), 0) / secs
            for name, secs in self.floats.items() if name.startswith("encode_seconds.") and secs > 0
        }
        return {
            "worker": self.worker, "pid": os.getpid(), "uptime_s": round(now - self.started, 3),
            "totals": dict(self.counters), "rates": {k: round(v, 1) for k, v in rates.items()},
            "encode_fps_per_core": {k: round(v, 1) for k, v in fps.items()},
            "assigned": sorted(self.assigned), "time": time.time(),
            "lag": {f"{topic}:{partition}": n for (topic, partition), n in sorted(self.lag.items())},
        }

    def log_line(self, snap: dict[str, Any]) -> str:
        rates = snap["rates"]
        line = (
            f"processors {self.worker}: telemetry {rates.get('telemetry_records', 0):,.0f} rec/s "
            f"({rates.get('telemetry_points', 0):,.0f} points/s), "
            f"windows {rates.get('windows_out', 0):,.0f}/s, frames {rates.get('frames_in', 0):,.1f}/s, "
            f"partitions {len(snap['assigned'])}"
        )
        log.info(line)
        return line


def write_status(path: Path, snap: dict[str, Any]) -> None:
    """Atomically write the status JSON (tests and the benchmark read it). Writes may overlap
    (the periodic one and one on a rebalance, in executor threads): each uses its own temporary
    file, or one's rename would find the other's already moved and crash the worker."""
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(snap, indent=1, sort_keys=True))
    tmp.replace(path)
