"""Facts with one home: the Confluent wire header, the epoch, the time units, the stats
resolutions, the metric columns and the binary types are each defined once in ``src/robostream``
(a second copy fails here, naming the file)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from robostream.schemas import WIRE_HEADER, wire_header
from robostream.times import datetime_to_us, micros_to_datetime

SRC = Path(__file__).resolve().parents[2] / "src" / "robostream"


def files_defining(text: str) -> set[str]:
    return {str(path.relative_to(SRC)) for path in SRC.rglob("*.py") if text in path.read_text()}


@pytest.mark.parametrize(("text", "home"), [
    ('Struct(">bI")', "schemas/codec.py"),
    ("datetime(1970, 1, 1", "times.py"),
    ("MINUTE_US = ", "times.py"),
    ("HOUR_US = ", "times.py"),
    ("DAY_US = ", "times.py"),
    ("RESOLUTION_US: ", "topics/catalog.py"),
    ('"cpu_percent", "memory_mb", "network_latency_ms"', "schemas/packed.py"),
    ("DataType.SAFETENSORS,\n", "schemas/datatypes.py"),
])
def test_defined_once(text: str, home: str) -> None:
    assert files_defining(text) == {home}


def test_the_wire_header_and_the_epoch() -> None:
    assert wire_header(0x01020304) == b"\x00\x01\x02\x03\x04" and WIRE_HEADER.size == 5
    moment = datetime(2026, 11, 25, 10, 0, 0, 123, tzinfo=UTC)
    assert datetime_to_us(moment) == 1_795_600_800_000_123
    assert micros_to_datetime(1_795_600_800_000_123) == moment
    assert datetime_to_us(moment.replace(tzinfo=None)) == 1_795_600_800_000_123  # naive: UTC (pymongo)
