"""Schema ids for the Confluent wire format: a small protocol and two implementations.

* :class:`InMemorySchemaResolver`: ids handed out in process (unit tests, tools, benchmarks).
* :class:`ConfluentSchemaResolver`: backed by ``confluent_kafka``'s ``SchemaRegistryClient``
  (robostream's own registry or any Confluent-compatible one); registers or looks up, cached.
  Its first call per schema blocks on HTTP: in asyncio code call it in an executor (or warm it
  up at start), later calls are dictionary look-ups.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Protocol, runtime_checkable

import fastavro


@runtime_checkable
class SchemaIdResolver(Protocol):
    """Maps (subject, schema) to a registry id and back."""

    def id_for(self, subject: str, schema_str: str) -> int:
        """The id of ``schema_str`` under ``subject`` (registering it if the resolver may)."""
        ...

    def schema_for(self, schema_id: int) -> Any:
        """The fastavro-parsed schema with this id; raises ``LookupError`` if unknown."""
        ...


def parse_schema_str(schema_str: str) -> Any:
    """Parse Avro schema JSON text with fastavro (no global name registry)."""
    return fastavro.parse_schema(json.loads(schema_str), named_schemas={})


class InMemorySchemaResolver:
    """Ids assigned in process, like a registry would: one id per distinct schema text.

    The same schema under two subjects shares its id (as in Confluent's registry). Thread-safe.
    """

    def __init__(self, first_id: int = 1) -> None:
        self._next = first_id
        self._ids: dict[str, int] = {}
        self._texts: dict[int, str] = {}
        self._parsed: dict[int, Any] = {}
        self._subjects: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def id_for(self, subject: str, schema_str: str) -> int:
        """Return (assigning if new) the id of ``schema_str``; record it under ``subject``."""
        schema_id = self._ids.get(schema_str)
        if schema_id is not None and schema_id in self._subjects.get(subject, ()):
            return schema_id
        with self._lock:
            schema_id = self._ids.get(schema_str)
            if schema_id is None:
                schema_id = self._next
                self._next += 1
                self._parsed[schema_id] = parse_schema_str(schema_str)
                self._texts[schema_id] = schema_str
                self._ids[schema_str] = schema_id
            versions = self._subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
        return schema_id

    def schema_for(self, schema_id: int) -> Any:
        """The parsed schema of ``schema_id``; ``LookupError`` if never registered."""
        try:
            return self._parsed[schema_id]
        except KeyError:
            raise LookupError(f"schema id {schema_id} is not registered") from None

    def schema_str_for(self, schema_id: int) -> str:
        """The registered schema text of ``schema_id``."""
        try:
            return self._texts[schema_id]
        except KeyError:
            raise LookupError(f"schema id {schema_id} is not registered") from None

    def subjects(self) -> dict[str, list[int]]:
        """Subject -> ids registered under it, oldest first."""
        return {subject: list(ids) for subject, ids in self._subjects.items()}


class ConfluentSchemaResolver:
    """Resolver backed by ``confluent_kafka.schema_registry.SchemaRegistryClient``.

    Args:
        registry: a client, or the registry URL (``settings.schema_registry.url``;
            ``mock://name`` gives confluent_kafka's in-memory mock).
        auto_register: register unknown schemas (producers, the gateway); with False only
            look them up (a subject must already hold the schema).
        normalize: ask the registry to normalise schemas before comparing.
    """

    def __init__(
        self, registry: Any, *, auto_register: bool = True, normalize: bool = False
    ) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        if isinstance(registry, str):
            registry = SchemaRegistryClient.new_client({"url": registry})
        self.client = registry
        self.auto_register = auto_register
        self.normalize = normalize
        self._ids: dict[tuple[str, str], int] = {}
        self._parsed: dict[int, Any] = {}

    def id_for(self, subject: str, schema_str: str) -> int:
        """Register (or look up) ``schema_str`` under ``subject``; cached per pair."""
        cached = self._ids.get((subject, schema_str))
        if cached is not None:
            return cached
        from confluent_kafka.schema_registry import Schema

        schema = Schema(schema_str, schema_type="AVRO")
        if self.auto_register:
            schema_id = int(self.client.register_schema(subject, schema, self.normalize))
        else:
            schema_id = int(self.client.lookup_schema(subject, schema, self.normalize).schema_id)
        self._ids[(subject, schema_str)] = schema_id
        return schema_id

    def schema_for(self, schema_id: int) -> Any:
        """Fetch (once) and parse the schema with this id; ``LookupError`` if the registry has none."""
        cached = self._parsed.get(schema_id)
        if cached is not None:
            return cached
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            schema = self.client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise LookupError(f"schema id {schema_id} is not registered") from None
            raise
        parsed = parse_schema_str(schema.schema_str)
        self._parsed[schema_id] = parsed
        return parsed
