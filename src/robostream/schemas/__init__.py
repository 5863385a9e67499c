"""The wire contract: Avro schemas per data type, the envelope, and the codecs.

Robot frames (JSON or MessagePack) -> validated :class:`Envelope` -> Kafka record (Confluent wire
format) and back. Every rejection is a :class:`ValidationError`. The schema registry *server*
lives in ``robostream.schemas.registry`` and is not imported here.
"""

from robostream.schemas.catalog import (
    content_type_for,
    load_schema,
    parsed_schema,
    payload_schema,
    schema_names,
    schema_str,
    subject_for,
    subject_name,
    topic_for,
)
from robostream.schemas.codec import (
    MAGIC_BYTE,
    WIRE_HEADER,
    DecodedBatch,
    KafkaRecord,
    decode_frame,
    decode_record,
    decode_value,
    encode_frame,
    encode_record,
    encode_value,
    frame_items,
    parse_into,
    validate_event,
    wire_header,
)
from robostream.schemas.datatypes import BINARY_TYPES, DataType
from robostream.schemas.envelope import (
    Envelope,
    build_envelope,
    inline_blob,
    parse_envelope,
    with_claim_check,
)
from robostream.schemas.resolver import (
    ConfluentSchemaResolver,
    InMemorySchemaResolver,
    SchemaIdResolver,
)
from robostream.schemas.validation import ErrorCode, ValidationError
from robostream.schemas.vuer import decode_vuer, encode_vuer

__all__ = [
    "BINARY_TYPES",
    "MAGIC_BYTE",
    "WIRE_HEADER",
    "ConfluentSchemaResolver",
    "DataType",
    "DecodedBatch",
    "Envelope",
    "ErrorCode",
    "InMemorySchemaResolver",
    "KafkaRecord",
    "SchemaIdResolver",
    "ValidationError",
    "build_envelope",
    "content_type_for",
    "decode_frame",
    "decode_record",
    "decode_value",
    "decode_vuer",
    "encode_frame",
    "encode_record",
    "encode_value",
    "encode_vuer",
    "frame_items",
    "inline_blob",
    "load_schema",
    "parse_envelope",
    "parse_into",
    "parsed_schema",
    "payload_schema",
    "schema_names",
    "schema_str",
    "subject_for",
    "subject_name",
    "topic_for",
    "validate_event",
    "wire_header",
    "with_claim_check",
]
