"""Confluent Schema Registry errors: an HTTP status plus a body ``{"error_code", "message"}``.

The codes and messages follow Confluent's own (``rest/exceptions/Errors.java``), so clients that
branch on ``error_code`` (confluent-kafka's ``SchemaRegistryError.error_code``) behave the same.
"""

from __future__ import annotations

from typing import Any

from robostream.errors import RobostreamError

COMPATIBILITY_LEVELS_TEXT = (
    "none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive"
)


class RegistryError(RobostreamError):
    """An error the REST API answers with ``status`` and ``{"error_code", "message"}``."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def body(self) -> dict[str, Any]:
        """The JSON body Confluent sends for this error."""
        return {"error_code": self.error_code, "message": self.message}


def subject_not_found(subject: str) -> RegistryError:
    return RegistryError(404, 40401, f"Subject '{subject}' not found.")


def version_not_found(version: int | str) -> RegistryError:
    return RegistryError(404, 40402, f"Version {version} not found.")


def schema_not_found(schema_id: int | None = None) -> RegistryError:
    message = "Schema not found" if schema_id is None else f"Schema {schema_id} not found"
    return RegistryError(404, 40403, message)


def subject_soft_deleted(subject: str) -> RegistryError:
    return RegistryError(
        404, 40404, f"Subject '{subject}' was soft deleted.Set permanent=true to delete permanently"
    )


def subject_not_soft_deleted(subject: str) -> RegistryError:
    return RegistryError(
        404, 40405, f"Subject '{subject}' was not deleted first before being permanently deleted"
    )


def version_soft_deleted(subject: str, version: int) -> RegistryError:
    return RegistryError(
        404,
        40406,
        f"Subject '{subject}' Version {version} was soft deleted.Set permanent=true to delete "
        "permanently",
    )


def version_not_soft_deleted(subject: str, version: int) -> RegistryError:
    return RegistryError(
        404,
        40407,
        f"Subject '{subject}' Version {version} was not deleted first before being permanently "
        "deleted",
    )


def subject_compatibility_not_configured(subject: str) -> RegistryError:
    return RegistryError(
        404, 40408, f"Subject '{subject}' does not have subject-level compatibility configured"
    )


def incompatible_schema(message: str) -> RegistryError:
    """HTTP 409: Confluent answers ``error_code`` 409 with the incompatibility details."""
    return RegistryError(409, 409, message)


def invalid_schema(message: str) -> RegistryError:
    return RegistryError(422, 42201, message)


def invalid_version(version: str) -> RegistryError:
    return RegistryError(
        422,
        42202,
        f"The specified version '{version}' is not a valid version id. "
        'Allowed values are between [1, 2^31-1] and the string "latest"',
    )


def invalid_compatibility_level() -> RegistryError:
    return RegistryError(
        422, 42203, f"Invalid compatibility level. Valid values are {COMPATIBILITY_LEVELS_TEXT}"
    )


def invalid_mode(mode: str) -> RegistryError:
    return RegistryError(
        422, 42204, f"Invalid mode {mode}. This registry only supports READWRITE."
    )


def reference_exists(subject: str, version: int, ids: list[int]) -> RegistryError:
    return RegistryError(
        422, 42206,
        f"One or more references exist to the schema {{subject={subject},version={version}}}: "
        f"ids {ids}",
    )


def bad_request(message: str) -> RegistryError:
    return RegistryError(400, 400, message)


def store_error(message: str) -> RegistryError:
    return RegistryError(500, 50001, message)


def operation_timeout(message: str) -> RegistryError:
    return RegistryError(500, 50002, message)
