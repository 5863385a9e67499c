"""What each Schema Registry operation does, independent of HTTP: answers are JSON-ready
dicts and lists shaped like Confluent's, failures are :class:`RegistryError`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import avro.schema

from robostream.schemas.registry import errors
from robostream.schemas.registry.avro_schema import (
    AVRO,
    SUPPORTED_TYPES,
    ParsedSchema,
    Reference,
    parse_schema,
    references_from_json,
)
from robostream.schemas.registry.compatibility import (
    CompatibilityLevel,
    Incompatibility,
    Verdict,
    check_compatibility,
    check_pair,
)
from robostream.schemas.registry.records import (
    ConfigKey,
    ConfigValue,
    Record,
    SchemaKey,
    SchemaValue,
)
from robostream.schemas.registry.state import RegistryState
from robostream.schemas.registry.store import KafkaStore

Latest = Literal["latest"]
MAX_VERSION = 2**31 - 1


@dataclass(frozen=True)
class SchemaRequest:
    """The body of a register, lookup or compatibility request."""

    schema: str
    schema_type: str = AVRO
    references: tuple[Reference, ...] = ()

    @classmethod
    def from_body(cls, body: Any) -> SchemaRequest:
        """Validate ``{"schema", "schemaType"?, "references"?}``; 42201 if malformed."""
        if not isinstance(body, dict):
            raise errors.invalid_schema("Invalid request: expected a JSON object with 'schema'")
        schema = body.get("schema")
        if not isinstance(schema, str) or not schema.strip():
            raise errors.invalid_schema("Empty schema")
        schema_type = body.get("schemaType") or AVRO
        if not isinstance(schema_type, str):
            raise errors.invalid_schema(f"Invalid schema type {schema_type!r}")
        refs = references_from_json(body.get("references"))
        return cls(schema=schema, schema_type=schema_type.upper(), references=refs)


def parse_version(text: str) -> int | Latest:
    """A version path segment: ``latest`` (or -1) or 1..2^31-1; 42202 otherwise."""
    if text.strip().lower() == "latest":
        return "latest"
    try:
        number = int(text)
    except ValueError:
        raise errors.invalid_version(text) from None
    if number == -1:
        return "latest"
    if not 1 <= number <= MAX_VERSION:
        raise errors.invalid_version(text)
    return number


def version_json(value: SchemaValue) -> dict[str, Any]:
    """A subject version as ``GET /subjects/{s}/versions/{v}`` returns it."""
    data: dict[str, Any] = {"subject": value.subject, "version": value.version, "id": value.id}
    data.update(schema_json(value))
    return data


def schema_json(value: SchemaValue) -> dict[str, Any]:
    """``{"schemaType"?, "references"?, "schema"}``: type and references only when not default."""
    data: dict[str, Any] = {}
    if value.schema_type != AVRO:
        data["schemaType"] = value.schema_type
    if value.references:
        data["references"] = [r.to_json() for r in value.references]
    data["schema"] = value.schema
    return data


def page(items: list[Any], offset: int = 0, limit: int = -1) -> list[Any]:
    """Confluent's pagination: skip ``offset``, then at most ``limit`` (negative: all)."""
    items = items[max(offset, 0):]
    return items if limit < 0 else items[:limit]


class RegistryService:
    """The registry's operations over the in-memory state; writes go through the store."""

    def __init__(self, state: RegistryState, store: KafkaStore) -> None:
        self.state = state
        self.store = store

    # --- helpers ----------------------------------------------------------------------------

    def _parse(self, request: SchemaRequest) -> ParsedSchema:
        return parse_schema(
            request.schema, request.references, self.state.resolve, request.schema_type
        )

    def _require_subject(self, subject: str, deleted: bool = False) -> list[SchemaValue]:
        versions = self.state.versions(subject, deleted)
        if not versions:
            raise errors.subject_not_found(subject)
        return versions

    def _version(self, subject: str, version: int | Latest, deleted: bool) -> SchemaValue:
        versions = self._require_subject(subject, deleted)
        if version == "latest":
            return versions[-1]
        found = self.state.version(subject, version, deleted)
        if found is None:
            raise errors.version_not_found(version)
        return found

    def _parsed_versions(
        self, versions: list[SchemaValue]
    ) -> list[tuple[SchemaValue, avro.schema.Schema]]:
        pairs = [(v, self.state.parsed(v.id)) for v in versions]
        return [(v, p.schema) for v, p in pairs if p is not None]

    # --- subjects and versions --------------------------------------------------------------

    def subjects(
        self, prefix: str | None = None, deleted: bool = False, deleted_only: bool = False,
        offset: int = 0, limit: int = -1,
    ) -> list[str]:
        names = self.state.subjects(deleted, deleted_only)
        if prefix:
            names = [n for n in names if n.startswith(prefix)]
        return page(names, offset, limit)

    def versions(
        self, subject: str, deleted: bool = False, deleted_only: bool = False,
        offset: int = 0, limit: int = -1,
    ) -> list[int]:
        values = self._require_subject(subject, deleted or deleted_only)
        if deleted_only:
            values = [v for v in values if v.deleted]
        return page([v.version for v in values], offset, limit)

    def version(self, subject: str, version: str, deleted: bool = False) -> dict[str, Any]:
        return version_json(self._version(subject, parse_version(version), deleted))

    def version_schema(self, subject: str, version: str, deleted: bool = False) -> str:
        """Only the schema text of a version (``.../versions/{v}/schema``)."""
        return self._version(subject, parse_version(version), deleted).schema

    def referenced_by(self, subject: str, version: str) -> list[int]:
        """``.../versions/{v}/referencedby``: ids of schemas importing that version."""
        value = self._version(subject, parse_version(version), deleted=False)
        return self.state.referenced_by(subject, value.version)

    def _ensure_unreferenced(self, values: list[SchemaValue]) -> None:
        for value in values:
            ids = self.state.referenced_by(value.subject, value.version)
            if ids:
                raise errors.reference_exists(value.subject, value.version, ids)

    def lookup(self, subject: str, body: Any, deleted: bool = False) -> dict[str, Any]:
        """``POST /subjects/{s}``: the version of ``subject`` holding this schema."""
        request = SchemaRequest.from_body(body)
        self._require_subject(subject, deleted)
        found = self.state.find(subject, self._parse(request).identity, deleted)
        if found is None:
            raise errors.schema_not_found()
        return version_json(found)

    # --- schemas by id ----------------------------------------------------------------------

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        """``GET /schemas/ids/{id}``: ``{"schema", "schemaType"?, "references"?}``."""
        value = self.state.schema(schema_id)
        if value is None:
            raise errors.schema_not_found(schema_id)
        return schema_json(value)

    def schema_text_by_id(self, schema_id: int) -> str:
        value = self.state.schema(schema_id)
        if value is None:
            raise errors.schema_not_found(schema_id)
        return value.schema

    def id_versions(
        self, schema_id: int, subject: str | None = None, deleted: bool = False,
        offset: int = 0, limit: int = -1,
    ) -> list[dict[str, Any]]:
        if self.state.schema(schema_id) is None:
            raise errors.schema_not_found(schema_id)
        usages = self.state.usages(schema_id, deleted)
        pairs = [{"subject": v.subject, "version": v.version} for v in usages
                 if subject is None or v.subject == subject]
        return page(pairs, offset, limit)

    def id_subjects(
        self, schema_id: int, subject: str | None = None, deleted: bool = False,
        offset: int = 0, limit: int = -1,
    ) -> list[str]:
        pairs = self.id_versions(schema_id, subject, deleted)
        return page(sorted({p["subject"] for p in pairs}), offset, limit)

    @staticmethod
    def schema_types() -> list[str]:
        return list(SUPPORTED_TYPES)

    # --- registering ------------------------------------------------------------------------

    async def register(self, subject: str, body: Any) -> dict[str, Any]:
        """``POST /subjects/{s}/versions``: ``{"id"}`` of the (new or existing) registration."""
        request = SchemaRequest.from_body(body)
        parsed = self._parse(request)  # 42201 early, before becoming the writer
        existing = self.state.find(subject, parsed.identity)
        if existing is not None:
            return {"id": existing.id}
        return await self.store.write(lambda: self._plan_register(subject, request))

    def _plan_register(
        self, subject: str, request: SchemaRequest
    ) -> tuple[dict[str, Any], list[Record]]:
        parsed = self._parse(request)
        existing = self.state.find(subject, parsed.identity)
        if existing is not None:
            return {"id": existing.id}, []
        self._ensure_compatible(subject, parsed)
        schema_id = self.state.id_of(parsed.identity)
        known = None if schema_id is None else self.state.schema(schema_id)
        version = self.state.next_version(subject)
        value = SchemaValue(
            subject=subject,
            version=version,
            id=self.state.next_id() if known is None else known.id,
            schema=parsed.text if known is None else known.schema,
            schema_type=request.schema_type,
            references=parsed.references,
        )
        return {"id": value.id}, [Record(SchemaKey(subject, version), value)]

    def _ensure_compatible(self, subject: str, parsed: ParsedSchema) -> None:
        level = self.state.level(subject)
        previous = self._parsed_versions(self.state.versions(subject))
        verdict = check_compatibility(parsed.schema, [s for _, s in previous], level)
        if verdict.compatible:
            return
        assert verdict.failing_index is not None
        old = previous[verdict.failing_index][0]
        details = _details(verdict.incompatibilities, old, level)
        raise errors.incompatible_schema(
            "Schema being registered is incompatible with an earlier schema for subject "
            f'"{subject}", details: [{", ".join(details)}]'
        )

    # --- compatibility checks ---------------------------------------------------------------

    def test_compatibility(
        self, subject: str, version: str | None, body: Any, verbose: bool = False
    ) -> dict[str, Any]:
        """``POST /compatibility/subjects/{s}/versions[/{v}]``: ``{"is_compatible"}``."""
        request = SchemaRequest.from_body(body)
        wanted = None if version is None else parse_version(version)
        parsed = self._parse(request)
        level = self.state.level(subject)
        if not self.state.versions(subject) and wanted in (None, "latest"):
            return _compat_answer(Verdict(), None, level, verbose)
        if wanted is None:
            previous = self._parsed_versions(self.state.versions(subject))
            verdict = check_compatibility(parsed.schema, [s for _, s in previous], level)
            failing = None if verdict.failing_index is None else previous[verdict.failing_index][0]
            return _compat_answer(verdict, failing, level, verbose)
        old = self._version(subject, wanted, deleted=False)
        old_parsed = self.state.parsed(old.id)
        issues = [] if old_parsed is None or level is CompatibilityLevel.NONE else check_pair(
            parsed.schema, old_parsed.schema, level)
        return _compat_answer(Verdict(issues, 0 if issues else None), old, level, verbose)

    # --- deleting ---------------------------------------------------------------------------

    async def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        """Soft-delete every live version; or (``permanent``) erase a soft-deleted subject."""
        return await self.store.write(lambda: self._plan_delete_subject(subject, permanent))

    def _plan_delete_subject(
        self, subject: str, permanent: bool
    ) -> tuple[list[int], list[Record]]:
        every = self._require_subject(subject, deleted=True)
        live = [v for v in every if not v.deleted]
        if permanent:
            if live:
                raise errors.subject_not_soft_deleted(subject)
            records = [Record(SchemaKey(subject, v.version), None) for v in every]
            if self.state.subject_level(subject) is not None:
                records.append(Record(ConfigKey(subject), None))
            return [v.version for v in every], records
        if not live:
            raise errors.subject_soft_deleted(subject)
        self._ensure_unreferenced(live)
        records = [Record(SchemaKey(subject, v.version), replace(v, deleted=True)) for v in live]
        return [v.version for v in live], records

    async def delete_version(self, subject: str, version: str, permanent: bool = False) -> int:
        """Soft-delete one version; or (``permanent``) erase an already soft-deleted one."""
        wanted = parse_version(version)
        return await self.store.write(
            lambda: self._plan_delete_version(subject, wanted, permanent)
        )

    def _plan_delete_version(
        self, subject: str, wanted: int | Latest, permanent: bool
    ) -> tuple[int, list[Record]]:
        # a numbered version is found even when soft-deleted, to answer 40406 rather than 40402
        value = self._version(subject, wanted, deleted=permanent or wanted != "latest")
        key = SchemaKey(subject, value.version)
        if permanent:
            if not value.deleted:
                raise errors.version_not_soft_deleted(subject, value.version)
            return value.version, [Record(key, None)]
        if value.deleted:
            raise errors.version_soft_deleted(subject, value.version)
        self._ensure_unreferenced([value])
        return value.version, [Record(key, replace(value, deleted=True))]

    # --- config -----------------------------------------------------------------------------

    def get_config(self, subject: str | None, default_to_global: bool = False) -> dict[str, Any]:
        """``GET /config[/{s}]``: ``{"compatibilityLevel"}``."""
        if subject is None:
            return {"compatibilityLevel": self.state.global_level().value}
        level = self.state.subject_level(subject)
        if level is None and default_to_global:
            level = self.state.global_level()
        if level is None:
            raise errors.subject_compatibility_not_configured(subject)
        return {"compatibilityLevel": level.value}

    async def set_config(self, subject: str | None, body: Any) -> dict[str, Any]:
        """``PUT /config[/{s}]`` with ``{"compatibility"}``: echoes the new level."""
        raw = body.get("compatibility", body.get("compatibilityLevel")) if isinstance(
            body, dict) else None
        level = CompatibilityLevel.parse(raw)
        record = Record(ConfigKey(subject), ConfigValue(level.value))
        return await self.store.write(lambda: ({"compatibility": level.value}, [record]))

    async def delete_config(self, subject: str | None) -> dict[str, Any]:
        """``DELETE /config[/{s}]``: drop the level (back to global / BACKWARD); returns the
        old one."""
        return await self.store.write(lambda: self._plan_delete_config(subject))

    def _plan_delete_config(self, subject: str | None) -> tuple[dict[str, Any], list[Record]]:
        old = self.get_config(subject)
        return old, [Record(ConfigKey(subject), None)]


def _details(
    issues: list[Incompatibility], old: SchemaValue, level: CompatibilityLevel
) -> list[str]:
    return [
        *(i.render() for i in issues),
        f"{{oldSchemaVersion: {old.version}}}",
        f"{{oldSchema: '{old.schema}'}}",
        f"{{compatibility: '{level.value}'}}",
    ]


def _compat_answer(
    verdict: Verdict, old: SchemaValue | None, level: CompatibilityLevel, verbose: bool
) -> dict[str, Any]:
    answer: dict[str, Any] = {"is_compatible": verdict.compatible}
    if verbose:
        answer["messages"] = (
            _details(verdict.incompatibilities, old, level)
            if old is not None and not verdict.compatible else []
        )
    return answer
