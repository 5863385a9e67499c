"""Facts with one home: the Confluent wire header, the epoch, the time units, the stats
resolutions, the metric columns, the data types, the id pattern, the error codes and the column
packing are each defined once in ``src/robostream`` or the robot SDK ``sdk/src/robostream_sdk``
(a second copy fails here, naming the file)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from robostream.schemas import WIRE_HEADER, wire_header
from robostream.times import datetime_to_us, micros_to_datetime

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (ROOT / "src" / "robostream", ROOT / "sdk" / "src" / "robostream_sdk")


def files_defining(text: str) -> set[str]:
    return {str(path.relative_to(package.parent)) for package in PACKAGES for path in package.rglob("*.py")
            if text in path.read_text()}


@pytest.mark.parametrize(("text", "home"), [
    ('Struct(">bI")', "robostream/schemas/codec.py"),
    ('}/{session_id}".encode()', "robostream/schemas/envelope.py"),
    ('}/{self.session_id}".encode()', None),
    ("datetime(1970, 1, 1", "robostream/times.py"),
    ("MINUTE_US = ", "robostream/times.py"),
    ("HOUR_US = ", "robostream/times.py"),
    ("DAY_US = ", "robostream/times.py"),
    ("RESOLUTION_US: ", "robostream/topics/catalog.py"),
    ('"cpu_percent", "memory_mb", "network_latency_ms"', "robostream_sdk/packed.py"),
    ("DataType.SAFETENSORS,\n", "robostream_sdk/contract.py"),
    ('SAFETENSORS = "safetensors"', "robostream_sdk/contract.py"),
    ("A-Za-z0-9_.-]{0,63}", "robostream_sdk/contract.py"),
    ('MALFORMED_FRAME = "malformed_frame"', "robostream_sdk/errors.py"),
    ("def http_url(", "robostream_sdk/transport/__init__.py"),
    ("def pack_time_series(", "robostream_sdk/packed.py"),
    ("def validate_id(", "robostream_sdk/contract.py"),
])
def test_defined_once(text: str, home: str | None) -> None:
    assert files_defining(text) == ({home} if home else set())


def test_the_wire_header_and_the_epoch() -> None:
    assert wire_header(0x01020304) == b"\x00\x01\x02\x03\x04" and WIRE_HEADER.size == 5
    moment = datetime(2026, 11, 25, 10, 0, 0, 123, tzinfo=UTC)
    assert datetime_to_us(moment) == 1_795_600_800_000_123
    assert micros_to_datetime(1_795_600_800_000_123) == moment
    assert datetime_to_us(moment.replace(tzinfo=None)) == 1_795_600_800_000_123  # naive: UTC (pymongo)
