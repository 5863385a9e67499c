"""The interpreter of a long-running service: its start-up heap frozen, GC pauses measured, and
short GIL handoffs for the processes on the live path.

CPython's cyclic collector stops the whole process while it walks every object of the generations
it collects. After robostream's imports a service holds ~120,000 tracked objects (modules,
classes, pydantic, aiohttp, Faust and librdkafka wrappers), none of which will ever be garbage;
a full collection walks all of them, tens of milliseconds on a 2-core machine and more under load,
while a live record waits. :func:`freeze_startup_heap` moves what start-up allocated into the
permanent generation (:func:`gc.freeze`), so later collections walk only what the service
allocated since. :data:`GC_PAUSES` times every collection (``robostream_gc_pause_seconds`` by
generation) for each service's ``/metrics``.
"""

from __future__ import annotations

import bisect
import gc
import sys
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

#: How long a thread may hold the GIL while another waits for it (Python's default: 5 ms). Services
#: whose event loop or live task shares the interpreter with busy threads (the gateway's delivery
#: reports, the sink worker's bulk connectors) use this instead, so each handoff waits at most
#: 0.5 ms: measured in the sink worker, sink -> Redis publish p99 125 ms -> 19 ms with one robot.
GIL_SWITCH_INTERVAL_S = 0.0005

#: upper bounds (seconds) of the pause histogram's buckets
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class GcPauses(Collector):
    """Every collection's pause in this process, by generation (a Prometheus histogram)."""

    def __init__(self) -> None:
        self._counts = [[0] * (len(BUCKETS) + 1) for _ in range(3)]
        self._sums = [0.0, 0.0, 0.0]
        self._started = 0.0
        self._installed = False

    @property
    def installed(self) -> bool:
        """Whether collections are being timed."""
        return self._installed

    def install(self) -> None:
        """Start timing collections (idempotent)."""
        if not self._installed:
            gc.callbacks.append(self._callback)
            self._installed = True

    def uninstall(self) -> None:
        """Stop timing collections (idempotent); the pauses counted so far stay exported."""
        if self._installed:
            gc.callbacks.remove(self._callback)
            self._installed = False

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        generation = info["generation"]
        self._counts[generation][bisect.bisect_left(BUCKETS, pause)] += 1
        self._sums[generation] += pause

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "robostream_gc_pause_seconds",
            "Pauses of the cyclic garbage collector (the whole process waits), by generation.",
            labels=["generation"])
        for generation in range(3):
            cumulative, buckets = 0, []
            for bound, count in zip((*BUCKETS, float("inf")), self._counts[generation], strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            family.add_metric([str(generation)], buckets, self._sums[generation])
        yield family


#: The process's collector of GC pauses; register it in a service's registry.
GC_PAUSES = GcPauses()


def freeze_startup_heap() -> int:
    """Collect once, then freeze every object start-up left (call when a service is up).

    Returns how many objects were frozen. Also starts timing collections (:data:`GC_PAUSES`).
    """
    GC_PAUSES.install()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def shorten_gil_handoffs() -> None:
    """Let a thread waiting for the GIL get it after :data:`GIL_SWITCH_INTERVAL_S` (process-wide)."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
