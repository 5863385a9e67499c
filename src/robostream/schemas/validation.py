"""The one error type of the wire contract: :class:`ValidationError`.

Every rejection (a malformed frame, an unknown data type, a bad field, an unsafe id, a bad
``$dtype`` array, an undecodable Kafka record) is a ``ValidationError`` with a machine-readable
``code``, the ``data_type`` (when known), the field ``path`` (e.g. ``payload.pose.position.x[3]``),
what was ``expected``, what came (``got``) and a human sentence (``str(error)``).
"""

from __future__ import annotations

from typing import Any, cast

from robostream.errors import RobostreamError
from robostream_sdk import errors as _sdk
from robostream_sdk.errors import ERROR_CODE_DOCS, ErrorCode, describe

__all__ = ["ERROR_CODE_DOCS", "ErrorCode", "FieldError", "ValidationError", "describe"]


class ValidationError(_sdk.ValidationError, RobostreamError):
    """Input that does not satisfy the wire contract (the SDK's error, under robostream's root).

    Attributes as :class:`robostream_sdk.ValidationError`: ``code``, ``data_type``, ``path``,
    ``expected``, ``got``, ``index``, ``seq``; ``str(error)`` is the human sentence.
    """


class FieldError(_sdk.FieldError, RobostreamError):
    """Internal: a field-level failure whose path is collected while the stack unwinds
    (see :class:`robostream_sdk.errors.FieldError`); becomes this module's :class:`ValidationError`."""

    error_type = ValidationError

    def to_validation_error(self, **context: Any) -> ValidationError:
        """Build the public error with envelope context (data_type, index, seq)."""
        return cast(ValidationError, super().to_validation_error(**context))
