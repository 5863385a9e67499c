"""The ``_schemas`` topic's records, in Confluent Schema Registry's own JSON format.

Keys (compaction identity, so byte-exact: Confluent's field order, no whitespace)::

    {"keytype":"SCHEMA","subject":"s","version":1,"magic":1}
    {"keytype":"CONFIG","subject":null,"magic":0}              (null subject: the global config)
    {"keytype":"DELETE_SUBJECT","subject":"s","magic":0}       (read only: written by Confluent)
    {"keytype":"NOOP","magic":0}                               (ignored)

Values: ``{"subject","version","id","schemaType"?,"references"?,"schema","deleted"}`` for SCHEMA,
``{"compatibilityLevel":"BACKWARD"}`` for CONFIG, ``{"subject","version"}`` for DELETE_SUBJECT.
A null value is a tombstone (permanent delete).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from robostream.schemas.registry.avro_schema import AVRO, Reference

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SchemaKey:
    subject: str
    version: int

    def to_json(self) -> dict[str, Any]:
        return {"keytype": "SCHEMA", "subject": self.subject, "version": self.version, "magic": 1}


@dataclass(frozen=True)
class ConfigKey:
    subject: str | None  # None: the global config

    def to_json(self) -> dict[str, Any]:
        return {"keytype": "CONFIG", "subject": self.subject, "magic": 0}


@dataclass(frozen=True)
class DeleteSubjectKey:
    subject: str

    def to_json(self) -> dict[str, Any]:
        return {"keytype": "DELETE_SUBJECT", "subject": self.subject, "magic": 0}


@dataclass(frozen=True)
class SchemaValue:
    """One version of a subject; ``deleted`` marks a soft delete."""

    subject: str
    version: int
    id: int
    schema: str
    schema_type: str = AVRO
    references: tuple[Reference, ...] = ()
    deleted: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"subject": self.subject, "version": self.version, "id": self.id}
        if self.schema_type != AVRO:
            data["schemaType"] = self.schema_type
        if self.references:
            data["references"] = [r.to_json() for r in self.references]
        data["schema"] = self.schema
        data["deleted"] = self.deleted
        return data


@dataclass(frozen=True)
class ConfigValue:
    compatibility_level: str

    def to_json(self) -> dict[str, Any]:
        return {"compatibilityLevel": self.compatibility_level}


@dataclass(frozen=True)
class DeleteSubjectValue:
    subject: str
    version: int


Key = SchemaKey | ConfigKey | DeleteSubjectKey
Value = SchemaValue | ConfigValue | DeleteSubjectValue


@dataclass(frozen=True)
class Record:
    """A decoded record; ``value`` None is a tombstone."""

    key: Key
    value: Value | None


def _dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def encode(record: Record) -> tuple[bytes, bytes | None]:
    """The Kafka key and value bytes of ``record``."""
    value = record.value
    if isinstance(value, DeleteSubjectValue):
        raise ValueError("DELETE_SUBJECT records are read, never written, by this registry")
    return _dumps(record.key.to_json()), None if value is None else _dumps(value.to_json())


def decode(key: bytes | None, value: bytes | None) -> Record | None:
    """Decode a record from the topic; ``None`` for NOOPs, unknown key types and garbage."""
    try:
        key_data = json.loads(key) if key else None
        value_data = json.loads(value) if value else None
        return _decode(key_data, value_data)
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("skipping unreadable schema registry record key=%r: %s", key, exc)
        return None


def _decode(key: Any, value: Any) -> Record | None:
    if not isinstance(key, dict):
        return None
    keytype = key.get("keytype")
    if keytype == "SCHEMA":
        schema_key = SchemaKey(subject=str(key["subject"]), version=int(key["version"]))
        return Record(schema_key, None if value is None else _schema_value(value))
    if keytype == "CONFIG":
        subject = key.get("subject")
        config_key = ConfigKey(subject=None if subject is None else str(subject))
        return Record(config_key, None if value is None else _config_value(value))
    if keytype == "DELETE_SUBJECT":
        delete_key = DeleteSubjectKey(subject=str(key["subject"]))
        if value is None:
            return Record(delete_key, None)
        return Record(delete_key, DeleteSubjectValue(str(value["subject"]), int(value["version"])))
    return None


def _schema_value(value: dict[str, Any]) -> SchemaValue:
    refs = tuple(
        Reference(name=str(r["name"]), subject=str(r["subject"]), version=int(r["version"]))
        for r in value.get("references") or ()
    )
    return SchemaValue(
        subject=str(value["subject"]),
        version=int(value["version"]),
        id=int(value["id"]),
        schema=str(value["schema"]),
        schema_type=str(value.get("schemaType") or AVRO),
        references=refs,
        deleted=bool(value.get("deleted", False)),
    )


def _config_value(value: dict[str, Any]) -> ConfigValue | None:
    level = value.get("compatibilityLevel") or value.get("compatibility")
    return ConfigValue(str(level)) if level else None
