"""The data types robots stream: one Kafka topic and one Avro schema each.

Defined once in the robot SDK (:mod:`robostream_sdk.contract`), which robots install on their own;
the platform uses the same definitions.
"""

from __future__ import annotations

from robostream_sdk.contract import BINARY_TYPES, METADATA_TYPES, DataType

__all__ = ["BINARY_TYPES", "METADATA_TYPES", "DataType"]
