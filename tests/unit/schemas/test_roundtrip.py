"""Every data type survives JSON frames, MessagePack frames and Avro records unchanged."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robostream.schemas import (
    DataType,
    Envelope,
    InMemorySchemaResolver,
    build_envelope,
    decode_frame,
    decode_record,
    encode_frame,
    encode_record,
    parsed_schema,
)
from tests.unit.schemas.strategies import PAYLOADS, canon, ids, timestamps_us

RESOLVER = InMemorySchemaResolver()
ROUND_TRIP = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def envelopes(data_type: DataType) -> st.SearchStrategy[Envelope]:
    return st.builds(
        lambda payload, robot, session, seq, us: build_envelope(
            data_type, payload, robot_id=robot, session_id=session, seq=seq, timestamp=us / 1_000_000
        ),
        PAYLOADS[data_type],
        ids,
        ids,
        st.integers(0, 2**63 - 1),
        timestamps_us,
    )


def same(a: Envelope, b: Envelope) -> bool:
    return canon(a.to_avro()) == canon(b.to_avro()) and a.data_type is b.data_type


def through_frame(envelope: Envelope, fmt: Any) -> Envelope:
    batch = decode_frame(encode_frame([envelope, envelope], fmt), fmt)
    assert batch.errors == []
    assert len(batch.envelopes) == 2
    return batch.envelopes[0]


def through_record(envelope: Envelope) -> Envelope:
    record = encode_record(envelope, RESOLVER, ingest_time_ms=1)
    plain = io.BytesIO()  # the union fast path writes exactly what plain fastavro writes
    fastavro.schemaless_writer(plain, parsed_schema(envelope.data_type), envelope.to_avro())
    assert record.value[5:] == plain.getvalue()
    return decode_record(record.value, RESOLVER, key=record.key, headers=record.headers)


@pytest.mark.parametrize("data_type", list(DataType), ids=str)
def test_round_trip_json_msgpack_avro(data_type: DataType) -> None:
    @ROUND_TRIP
    @given(envelopes(data_type))
    def check(envelope: Envelope) -> None:
        for fmt in ("json", "msgpack"):
            assert same(through_frame(envelope, fmt), envelope), fmt
        assert same(through_record(envelope), envelope)
        # a validated payload validates to itself (normalisation is idempotent)
        again = build_envelope(
            data_type,
            envelope.payload,
            robot_id=envelope.robot_id,
            session_id=envelope.session_id,
            seq=envelope.seq,
            timestamp=envelope.timestamp,
        )
        assert same(again, envelope)

    check()


@given(timestamps_us)
@settings(max_examples=300)
def test_float_seconds_keep_every_microsecond(us: int) -> None:
    envelope = build_envelope(
        "log",
        {"level": "info", "message": "x"},
        robot_id="r1",
        session_id="s1",
        seq=0,
        timestamp=us / 1_000_000,
    )
    assert envelope.timestamp_us == us
    assert through_frame(envelope, "json").timestamp_us == us
