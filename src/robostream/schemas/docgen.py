"""Generate the schema reference page from the ``.avsc`` docs.

Usage: ``python -m robostream.schemas.docgen > docs/schemas.md``
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from typing import Any

import orjson

from robostream.schemas import catalog
from robostream.schemas.datatypes import BINARY_TYPES, DataType
from robostream.schemas.examples import example_payload, time_series_payload
from robostream.schemas.validation import ERROR_CODE_DOCS

INTRO = """\
# robostream wire contract: schemas reference

Generated from `src/robostream/schemas/avro/*.avsc` by
`python -m robostream.schemas.docgen > docs/schemas.md`. Do not edit by hand.

## Envelope (robot -> gateway)

A robot sends envelopes in JSON text frames or MessagePack binary frames (the default; bytes stay
bytes). A frame holds one envelope or a list of them (a batch).

{envelope_table}

Unknown fields are rejected, in the envelope and in payloads. In JSON frames `bytes` fields are
base64 text (RFC 4648, padded) and a missing time_series sample is `null`.

**NaN policy.** Only time_series sample values may be NaN (a missing sample; `null` in JSON).
All other numbers (timestamps, seq, parameters, fps, rates) must be finite. Infinities are never
accepted.

**Packed time_series columns** (MessagePack frames only; what the robot SDK sends by default).
Any numeric column of a `time_series` payload may be a MessagePack `bin` instead of a list:
`t` as little-endian int64, every other column as little-endian float64 (8 bytes per value), a
joint matrix (`joints.angle`, `velocity`, `torque`) as one row-major block of n x dof values (dof
= `len(names)`, else its size / n / 8) or as a list of packed rows. The rules are the lists':
each column has one value per entry of `t`, NaN is a missing sample, infinities are refused
(`non_finite`, with the index), a size that is not a multiple of 8 or not n values is
`invalid_field` (a float32 column is named as such). The gateway copies packed columns into the
Avro record as they are: packed and list columns of the same samples make byte-identical Kafka
records. JSON frames keep lists (`null` for NaN). With NumPy:
`{{"t": offsets_us.astype("<i8").tobytes(), "channels": {{"temp": values.astype("<f8").tobytes()}}}}`.

**Binary types** ({binary_types}) carry a `blob`: `format`, `size_bytes`, `sha256` and `content`,
either the bytes inline or a claim-check `{{bucket, key, size, sha256}}` pointing to S3. A robot
may omit `size_bytes` and `sha256` with inline content (they are computed, and checked when given).

## Kafka record

* topic `<prefix>.<data_type>` (prefix: `topics.prefix`, default `robot`);
  schema subject `<prefix>.<data_type>-value` (TopicNameStrategy).
* key: `robot_id/session_id` (UTF-8).
* value: Confluent wire format: magic byte `0`, 4-byte big-endian schema id, Avro binary of the
  data type's record (envelope fields + typed `payload`).
* headers: `data_type`, `seq` (decimal), `content-type`
  (`application/vnd.robostream.<data_type>+avro`), `ingest_time` (ms since the epoch, decimal).

## Errors

Every rejection is a `ValidationError` with `code`, `data_type`, `path`
(e.g. `payload.pose.position.x[3]`), `expected`, `got`, the envelope's `index` in its batch and its
`seq` when readable, and a human sentence. Codes:

{codes}
"""


ENVELOPE_ROWS = (
    ("timestamp", "seconds since the Unix epoch, UTC (`time.time()`), an ISO-8601 string with an "
     "offset, or a MessagePack timestamp; 1970 <= t < 2200. Stored as `long` `timestamp-micros`. "
     "NaN/Inf rejected."),
    ("robot_id`, `session_id", "ids: 1-64 characters of `[A-Za-z0-9_.-]`, starting with a letter "
     "or digit, no `..`, `/` or control characters."),
    ("data_type", "one of: {data_types}."),
    ("seq", "integer, 0 <= seq < 2^63, increasing within the session."),
    ("payload", "the data type's payload, below."),
)


def _envelope_table(data_types: str) -> str:
    rows = ["| field | what a robot sends |", "|---|---|"]
    rows += [f"| `{name}` | {text.format(data_types=data_types)} |" for name, text in ENVELOPE_ROWS]
    return "\n".join(rows)


def type_name(schema: Any) -> str:
    """Compact rendering of an Avro type for the tables."""
    if isinstance(schema, str):
        return schema.rsplit(".", 1)[-1]
    if isinstance(schema, list):
        return " | ".join(type_name(s) for s in schema)
    kind = schema["type"]
    if isinstance(kind, dict | list):
        return type_name(kind)
    if kind in ("record", "fixed"):
        return str(schema["name"])
    if kind == "enum":
        return f"enum {schema['name']} {{{', '.join(schema['symbols'])}}}"
    if kind == "array":
        return f"array<{type_name(schema['items'])}>"
    if kind == "map":
        return f"map<{type_name(schema['values'])}>"
    if "logicalType" in schema:
        return f"{kind} ({schema['logicalType']})"
    return str(kind)


def _records_in(schema: Any, named: dict[str, Any]) -> list[dict[str, Any]]:
    """Record types a field type leads to (through unions; named references resolved)."""
    if isinstance(schema, str):
        found = named.get(schema.rsplit(".", 1)[-1])
        return [found] if found else []
    if isinstance(schema, list):
        return [r for s in schema for r in _records_in(s, named)]
    kind = schema["type"]
    if isinstance(kind, dict | list):
        return _records_in(kind, named)
    if kind == "record":
        named[schema["name"]] = schema
        return [schema]
    return []


def field_rows(
    record: dict[str, Any], prefix: str = "", named: dict[str, Any] | None = None
) -> Iterator[tuple[str, str, str]]:
    """(path, type, doc) for every field, nested records flattened with dotted paths."""
    named = {} if named is None else named
    for field in record["fields"]:
        path = f"{prefix}{field['name']}"
        doc = field.get("doc", "")
        if "default" in field:
            doc += f" Default: `{orjson.dumps(field['default']).decode()}`."
        yield path, type_name(field["type"]), doc
        for sub in _records_in(field["type"], named):
            if sub["name"] == "ClaimCheck":
                yield from field_rows(sub, f"{path}.{{ref}}.", named)
            elif prefix.count(".") < 6:
                yield from field_rows(sub, f"{path}.", named)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(schema: dict[str, Any]) -> str:
    lines = ["| field | type | description |", "|---|---|---|"]
    for path, kind, doc in field_rows(schema):
        lines.append(f"| `{path}` | `{_cell(kind)}` | {_cell(doc)} |")
    return "\n".join(lines)


def _doc_example(data_type: DataType) -> dict[str, Any]:
    payload = time_series_payload(3) if data_type == DataType.TIME_SERIES else example_payload(data_type)
    if data_type in BINARY_TYPES:
        payload["blob"] = {"format": payload["blob"]["format"], "content": bytes(range(12))}
    return {
        "timestamp": 1718000000.123456,
        "robot_id": "robot_001",
        "session_id": "s-2024-06-10-01",
        "data_type": str(data_type),
        "seq": 42,
        "payload": payload,
    }


def _json(obj: Any) -> str:
    def default(value: Any) -> Any:
        if isinstance(value, bytes):
            return base64.b64encode(value).decode()
        raise TypeError(type(value).__name__)

    return orjson.dumps(obj, default=default, option=orjson.OPT_INDENT_2).decode()


def _section(name: str) -> str:
    schema = catalog.load_schema(name)
    parts = [f"## `{name}` — {schema['name']}", "", schema.get("doc", ""), ""]
    if name in {str(dt) for dt in DataType}:
        parts += [
            f"Topic `robot.{name}`, subject `{catalog.subject_for(name)}`, content type "
            f"`{catalog.content_type_for(name)}`.",
            "",
        ]
    parts += [_table(schema), ""]
    if name in {str(dt) for dt in DataType}:
        parts += [
            "Example envelope (JSON frame; bytes as base64):",
            "",
            "```json",
            _json(_doc_example(DataType(name))),
            "```",
            "",
        ]
    return "\n".join(parts)


def render() -> str:
    """The whole reference page as Markdown."""
    codes = "\n".join(f"* `{code}`: {doc}" for code, doc in ERROR_CODE_DOCS.items())
    data_types = ", ".join(f"`{dt}`" for dt in DataType)
    intro = INTRO.format(
        envelope_table=_envelope_table(data_types),
        binary_types=", ".join(f"`{dt}`" for dt in DataType if dt in BINARY_TYPES),
        codes=codes,
    )
    blob = catalog.load_schema("blob")
    shared = f"## Shared: `Blob`\n\n{blob['doc']}\n\n{_table(blob)}\n"
    sections = [_section(name) for name in catalog.schema_names()]
    return "\n".join([intro, shared, *sections]).rstrip() + "\n"


def main() -> None:
    """Print the reference page to stdout."""
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
