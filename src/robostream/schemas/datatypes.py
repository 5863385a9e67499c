"""The data types robots stream: one Kafka topic and one Avro schema each."""

from __future__ import annotations

from enum import StrEnum


class DataType(StrEnum):
    """Every data type of the seed, as it appears in envelopes, topic names and schema subjects."""

    TIME_SERIES = "time_series"
    PARAMETERS = "parameters"
    IMAGES = "images"
    VIDEO = "video"
    AUDIO = "audio"
    LOG = "log"
    MARKDOWN = "markdown"
    FILE = "file"
    CSV = "csv"
    SAFETENSORS = "safetensors"
    JSON = "json"
    YAML = "yaml"
    TOML = "toml"
    MSGPACK = "msgpack"
    VUER_MSG = "vuer_msg"
    ZIP = "zip"
    TAR = "tar"


#: Types whose payload is an opaque binary blob (format, size, checksum, inline bytes or S3 ref):
#: the gateway claim-checks big ones to S3 and the S3 sink stores them as objects. The topics'
#: :data:`~robostream.topics.catalog.MEDIA_TYPES` (media retention) are derived from it.
BINARY_TYPES: frozenset[DataType] = frozenset(
    {
        DataType.IMAGES,
        DataType.VIDEO,
        DataType.AUDIO,
        DataType.FILE,
        DataType.SAFETENSORS,
        DataType.ZIP,
        DataType.TAR,
        DataType.MSGPACK,
    }
)

#: Metadata-like types: documents and settings, sent as JSON text frames by the SDK's ``auto``
#: framing (the seed: "JSON for metadata, MessagePack for binary"); every other type goes as
#: MessagePack binary frames.
METADATA_TYPES: frozenset[DataType] = frozenset(
    {
        DataType.PARAMETERS,
        DataType.LOG,
        DataType.MARKDOWN,
        DataType.JSON,
        DataType.YAML,
        DataType.TOML,
        DataType.CSV,
    }
)
