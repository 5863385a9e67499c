"""The services' garbage-collector set-up: start-up heap frozen, every collection timed."""

from __future__ import annotations

import gc
import sys

import pytest
from prometheus_client import CollectorRegistry

from robostream.gctuning import GC_PAUSES, GIL_SWITCH_INTERVAL_S, GcPauses, freeze_startup_heap

NAME = "robostream_gc_pause_seconds"


def _registry_with(collector: GcPauses) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def _full_collections(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value(f"{NAME}_count", {"generation": "2"})


def test_each_collection_is_counted_in_its_generation() -> None:
    pauses = GcPauses()
    registry = _registry_with(pauses)
    pauses.install()
    try:
        gc.collect(1)
        gc.collect(2)
        gc.collect(2)
    finally:
        pauses.uninstall()

    def sample(suffix: str, generation: str, **labels: str) -> float | None:
        return registry.get_sample_value(f"{NAME}_{suffix}", {"generation": generation, **labels})

    assert (sample("count", "1"), sample("count", "2")) == (1, 2)
    assert sample("bucket", "2", le="+Inf") == 2 and (sample("sum", "2") or 0) > 0
    assert sample("bucket", "2", le="0.0005") in (0, 1, 2)  # every bucket is exported


def test_installing_twice_counts_once_and_uninstalling_stops_counting() -> None:
    pauses = GcPauses()
    registry = _registry_with(pauses)
    pauses.install()
    pauses.install()
    try:
        gc.collect(2)
    finally:
        pauses.uninstall()
    pauses.uninstall()
    gc.collect(2)
    assert _full_collections(registry) == 1 and not pauses.installed
    pauses.install()
    try:
        gc.collect(2)
    finally:
        pauses.uninstall()
    assert _full_collections(registry) == 2


def test_freezing_the_startup_heap_takes_robostreams_imports_out_of_collections() -> None:
    registry = _registry_with(GC_PAUSES)
    try:
        frozen = freeze_startup_heap()
        assert frozen > 10_000  # modules, classes, pydantic models ...
        assert GC_PAUSES.installed
        before = _full_collections(registry) or 0
        gc.collect(2)
        assert _full_collections(registry) == before + 1
    finally:
        gc.unfreeze()  # the rest of the test session collects as usual
        GC_PAUSES.uninstall()


def test_the_gateway_shortens_gil_handoffs_when_its_delivery_report_thread_starts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from robostream.config import Settings
    from robostream.gateway.producer import GatewayProducer

    intervals: list[float] = []
    monkeypatch.setattr(sys, "setswitchinterval", intervals.append)
    producer = GatewayProducer(Settings())
    producer.start()
    try:
        assert intervals == [GIL_SWITCH_INTERVAL_S] and GIL_SWITCH_INTERVAL_S < 0.005
    finally:
        producer.close(0)
