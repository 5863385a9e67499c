"""The registry's in-memory view, rebuilt by applying the ``_schemas`` topic's records in order.

Only the event loop touches it (the Kafka reader thread hands records over with
``call_soon_threadsafe``), so it needs no locks.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from robostream.schemas.registry.avro_schema import ParsedSchema, Reference, parse_schema
from robostream.schemas.registry.compatibility import DEFAULT_LEVEL, CompatibilityLevel
from robostream.schemas.registry.errors import RegistryError, version_not_found
from robostream.schemas.registry.records import (
    ConfigKey,
    ConfigValue,
    DeleteSubjectKey,
    DeleteSubjectValue,
    Record,
    SchemaKey,
    SchemaValue,
)

log = logging.getLogger(__name__)


class RegistryState:
    """Subjects, versions, ids and configs as of the last applied record."""

    def __init__(self) -> None:
        self._subjects: dict[str, dict[int, SchemaValue]] = {}
        self._ids: dict[int, SchemaValue] = {}
        self._usages: dict[int, set[tuple[str, int]]] = {}
        self._parsed: dict[int, ParsedSchema] = {}
        self._by_identity: dict[str, int] = {}
        self._configs: dict[str | None, CompatibilityLevel] = {}
        self._max_id = 0

    # --- applying records -------------------------------------------------------------------

    def apply(self, record: Record) -> None:
        """Apply one record of the topic (in log order)."""
        key, value = record.key, record.value
        if isinstance(key, SchemaKey):
            if isinstance(value, SchemaValue):
                self._put_version(value)
            elif value is None:
                self._drop_version(key.subject, key.version)
        elif isinstance(key, ConfigKey):
            self._put_config(key.subject, value if isinstance(value, ConfigValue) else None)
        elif isinstance(key, DeleteSubjectKey) and isinstance(value, DeleteSubjectValue):
            self._soft_delete_up_to(value.subject, value.version)

    def _put_version(self, value: SchemaValue) -> None:
        previous = self._subjects.setdefault(value.subject, {}).get(value.version)
        if previous is not None and previous.id != value.id:
            self._forget_usage(previous.id, value.subject, value.version)
        self._subjects[value.subject][value.version] = value
        self._usages.setdefault(value.id, set()).add((value.subject, value.version))
        self._max_id = max(self._max_id, value.id)
        if value.id not in self._ids:
            self._ids[value.id] = value
            self._index(value)

    def _index(self, value: SchemaValue) -> None:
        try:
            parsed = parse_schema(value.schema, value.references, self.resolve, value.schema_type)
        except RegistryError as exc:
            log.warning("schema id %d is not usable here: %s", value.id, exc.message)
            return
        self._parsed[value.id] = parsed
        known = self._by_identity.setdefault(parsed.identity, value.id)
        if known != value.id:
            log.warning("schema id %d duplicates id %d (written by another registry?)",
                        value.id, known)

    def _drop_version(self, subject: str, version: int) -> None:
        dropped = self._subjects.get(subject, {}).pop(version, None)
        if dropped is None:
            return
        if not self._subjects[subject]:
            del self._subjects[subject]
        self._forget_usage(dropped.id, subject, version)

    def _forget_usage(self, schema_id: int, subject: str, version: int) -> None:
        usages = self._usages.get(schema_id, set())
        usages.discard((subject, version))
        if usages:
            return
        self._usages.pop(schema_id, None)
        self._ids.pop(schema_id, None)
        parsed = self._parsed.pop(schema_id, None)
        if parsed is not None and self._by_identity.get(parsed.identity) == schema_id:
            del self._by_identity[parsed.identity]

    def _put_config(self, subject: str | None, value: ConfigValue | None) -> None:
        if value is None:
            self._configs.pop(subject, None)
            return
        try:
            self._configs[subject] = CompatibilityLevel(value.compatibility_level.upper())
        except ValueError:
            log.warning("ignoring unknown compatibility level %r", value.compatibility_level)

    def _soft_delete_up_to(self, subject: str, version: int) -> None:
        versions = self._subjects.get(subject, {})
        for number, value in list(versions.items()):
            if number <= version:
                versions[number] = replace(value, deleted=True)

    def records(self) -> list[Record]:
        """Records that rebuild this state on an empty topic: every version (soft-deleted ones
        flagged) in id order, so a referenced schema comes before its users; then the configs."""
        values = sorted((v for versions in self._subjects.values() for v in versions.values()),
                        key=lambda v: (v.id, v.subject, v.version))
        configs = [Record(ConfigKey(subject), ConfigValue(level.value))
                   for subject, level in self._configs.items()]
        return [*(Record(SchemaKey(v.subject, v.version), v) for v in values), *configs]

    # --- queries ----------------------------------------------------------------------------

    def subjects(self, deleted: bool = False, deleted_only: bool = False) -> list[str]:
        """Subject names: with a live version, or (``deleted``) any, or (``deleted_only``)
        only those whose every version is soft-deleted."""
        names = []
        for name, versions in self._subjects.items():
            live = any(not v.deleted for v in versions.values())
            if (deleted_only and not live) or (not deleted_only and (live or deleted)):
                names.append(name)
        return sorted(names)

    def counts(self) -> tuple[int, int]:
        """``(schemas, subjects)``: distinct schema ids, subjects with a live version."""
        live = sum(1 for versions in self._subjects.values() if any(not v.deleted for v in versions.values()))
        return len(self._ids), live

    def versions(self, subject: str, deleted: bool = False) -> list[SchemaValue]:
        """The subject's versions, oldest first; soft-deleted ones only if ``deleted``."""
        values = self._subjects.get(subject, {}).values()
        return sorted((v for v in values if deleted or not v.deleted), key=lambda v: v.version)

    def has_subject(self, subject: str) -> bool:
        """Whether any version (live or soft-deleted) of ``subject`` exists."""
        return bool(self._subjects.get(subject))

    def version(self, subject: str, version: int, deleted: bool = False) -> SchemaValue | None:
        value = self._subjects.get(subject, {}).get(version)
        return None if value is None or (value.deleted and not deleted) else value

    def resolve(self, ref: Reference) -> tuple[str, tuple[Reference, ...]]:
        """A reference's schema text and references (soft-deleted versions still resolve)."""
        value = self.version(ref.subject, ref.version, deleted=True)
        if value is None:
            raise version_not_found(ref.version)
        return value.schema, value.references

    def schema(self, schema_id: int) -> SchemaValue | None:
        """A version carrying ``schema_id`` (its text, type and references)."""
        return self._ids.get(schema_id)

    def parsed(self, schema_id: int) -> ParsedSchema | None:
        return self._parsed.get(schema_id)

    def id_of(self, identity: str) -> int | None:
        """The id already given to a schema with this identity, if any."""
        return self._by_identity.get(identity)

    def usages(self, schema_id: int, deleted: bool = False) -> list[SchemaValue]:
        """Every subject version carrying ``schema_id``, sorted by subject and version."""
        found = (self.version(s, v, deleted) for s, v in self._usages.get(schema_id, ()))
        return sorted((v for v in found if v is not None), key=lambda v: (v.subject, v.version))

    def find(self, subject: str, identity: str, deleted: bool = False) -> SchemaValue | None:
        """The newest version of ``subject`` whose schema has ``identity``."""
        schema_id = self._by_identity.get(identity)
        if schema_id is None:
            return None
        matches = [v for v in self.versions(subject, deleted) if v.id == schema_id]
        return matches[-1] if matches else None

    def referenced_by(self, subject: str, version: int) -> list[int]:
        """Ids of live versions whose schema references ``subject`` at ``version``."""
        ids = {
            value.id
            for versions in self._subjects.values()
            for value in versions.values()
            if not value.deleted
            and any(r.subject == subject and r.version == version for r in value.references)
        }
        return sorted(ids)

    def next_id(self) -> int:
        """The id for a schema never seen before: one above every id seen in the topic."""
        return self._max_id + 1

    def next_version(self, subject: str) -> int:
        return max(self._subjects.get(subject, {}), default=0) + 1

    def subject_level(self, subject: str) -> CompatibilityLevel | None:
        return self._configs.get(subject)

    def global_level(self) -> CompatibilityLevel:
        return self._configs.get(None, DEFAULT_LEVEL)

    def level(self, subject: str) -> CompatibilityLevel:
        """The effective level for ``subject``: its own, else the global one."""
        return self._configs.get(subject) or self.global_level()
