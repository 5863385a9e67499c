"""The SDK's errors: one root (:class:`SdkError`) and the wire contract's :class:`ValidationError`.

A :class:`ValidationError` carries a machine-readable :class:`ErrorCode` (the same codes the
gateway sends back in nacks), the data type, the field path, what was expected and what came.
The platform's gateway raises a subclass of it, so ``except ValidationError`` catches both.
"""

from __future__ import annotations

import reprlib
import sys
from enum import Enum
from typing import Any, TypeVar

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover (Python 3.9 / 3.10)

    class StrEnum(str, Enum):
        """``enum.StrEnum`` of Python 3.11: members are their string values."""

        def __str__(self) -> str:
            return str(self.value)

        def __format__(self, spec: str) -> str:
            return format(str(self.value), spec)


_V = TypeVar("_V", bound="ValidationError")
_F = TypeVar("_F", bound="FieldError")


class SdkError(Exception):
    """Base of every error the robot SDK raises on purpose."""


class ErrorCode(StrEnum):
    """Machine-readable reasons for a rejection (sent back in nacks and DLQ headers)."""

    MALFORMED_FRAME = "malformed_frame"
    MALFORMED_RECORD = "malformed_record"
    UNKNOWN_SCHEMA = "unknown_schema"
    UNKNOWN_DATA_TYPE = "unknown_data_type"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    INVALID_FIELD = "invalid_field"
    NON_FINITE = "non_finite"
    INVALID_ID = "invalid_id"
    INVALID_DTYPE = "invalid_dtype"
    CHECKSUM_MISMATCH = "checksum_mismatch"
    TOO_LARGE = "too_large"


#: What each code means (used by the reference page).
ERROR_CODE_DOCS: dict[ErrorCode, str] = {
    ErrorCode.MALFORMED_FRAME: "the frame is not valid JSON/MessagePack, or holds neither an "
    "envelope nor a list of envelopes (the whole frame is rejected).",
    ErrorCode.MALFORMED_RECORD: "a Kafka record value is not in the Confluent wire format, its "
    "Avro body does not decode, or its key/headers disagree with it.",
    ErrorCode.UNKNOWN_SCHEMA: "a Kafka record names a schema id the registry does not know, or "
    "a schema that is not robostream's.",
    ErrorCode.UNKNOWN_DATA_TYPE: "`data_type` is not one of the 17 data types.",
    ErrorCode.MISSING_FIELD: "a required field is absent.",
    ErrorCode.UNKNOWN_FIELD: "a field the schema does not have (a typo is never dropped silently).",
    ErrorCode.INVALID_FIELD: "a field has the wrong type or an out-of-range value.",
    ErrorCode.NON_FINITE: "NaN or an infinity where the schema forbids it.",
    ErrorCode.INVALID_ID: "a robot, session, camera or other id fails the strict id pattern.",
    ErrorCode.INVALID_DTYPE: "a `$dtype` array has an unknown dtype, a bad shape, or a byte "
    "length that does not match its shape.",
    ErrorCode.CHECKSUM_MISMATCH: "a blob's `size_bytes` or `sha256` does not match its bytes "
    "(or its claim-check).",
    ErrorCode.TOO_LARGE: "a batch, an array or a nesting depth exceeds a limit.",
}


_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4
_REPR.maxlevel = 2


def describe(value: Any, limit: int = 60) -> str:
    """Short, safe description of a received value for error messages (type and truncated repr)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"{len(value)} bytes"
    shown = _REPR.repr(value)
    if len(shown) > limit:
        shown = shown[: limit - 3] + "..."
    return f"{shown} ({type(value).__name__})"


class ValidationError(SdkError):
    """Input that does not satisfy the wire contract.

    Attributes:
        code: machine-readable :class:`ErrorCode` value.
        data_type: the envelope's data type, when it was readable.
        path: dotted field path inside the envelope (``""`` for the whole frame).
        expected: what the schema expects there.
        got: what came instead (a short description).
        index: position of the envelope in its batch, when decoding a batch.
        seq: the envelope's ``seq``, when it was readable.
    """

    def __init__(
        self,
        code: ErrorCode | str,
        message: str | None = None,
        *,
        data_type: str | None = None,
        path: str = "",
        expected: str = "",
        got: str = "",
        index: int | None = None,
        seq: int | None = None,
    ) -> None:
        self.code = ErrorCode(code)
        self.data_type = data_type
        self.path = path
        self.expected = expected
        self.got = got
        self.index = index
        self.seq = seq
        self.detail = message
        super().__init__(self._sentence())

    def _sentence(self) -> str:
        where = []
        if self.index is not None:
            where.append(f"envelope #{self.index}")
        if self.data_type:
            where.append(f"data_type {self.data_type!r}")
        if self.path:
            where.append(f"field {self.path}")
        head = ", ".join(where) or "input"
        parts = [f"{head}: {self.detail}" if self.detail else head]
        if self.expected:
            parts.append(f"expected {self.expected}")
        if self.got:
            parts.append(f"got {self.got}")
        return f"{'; '.join(parts)} [{self.code}]"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for nacks and dead-letter headers."""
        return {
            "code": str(self.code),
            "message": str(self),
            "data_type": self.data_type,
            "path": self.path,
            "expected": self.expected,
            "got": self.got,
            "index": self.index,
            "seq": self.seq,
        }

    def located(
        self: _V,
        *,
        data_type: str | None = None,
        index: int | None = None,
        seq: int | None = None,
        prefix: str = "",
    ) -> _V:
        """A copy (of the same class) with the envelope context filled in (``prefix`` before the path)."""
        path = _join(prefix, self.path) if prefix else self.path
        return type(self)(
            self.code,
            self.detail,
            data_type=data_type if data_type is not None else self.data_type,
            path=path,
            expected=self.expected,
            got=self.got,
            index=index if index is not None else self.index,
            seq=seq if seq is not None else self.seq,
        )


def _join(prefix: str, path: str) -> str:
    if not path:
        return prefix
    return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}"


class FieldError(SdkError):
    """Internal: a field-level failure whose path is collected while the stack unwinds.

    Validators raise it at the failing value; each enclosing record/array/map adds its
    segment. Zero cost on the success path. Turned into :attr:`error_type` (a
    :class:`ValidationError`) by :meth:`to_validation_error`.
    """

    error_type: type[ValidationError] = ValidationError

    def __init__(
        self, code: ErrorCode, expected: str = "", got: str = "", detail: str | None = None
    ) -> None:
        super().__init__(detail or expected)
        self.code = code
        self.expected = expected
        self.got = got
        self.detail = detail
        self.segments: list[str] = []

    def at(self: _F, segment: str) -> _F:
        """Prepend a path segment (a field name or ``[i]``) and return self, for re-raising."""
        self.segments.append(segment)
        return self

    @property
    def path(self) -> str:
        out = ""
        for seg in reversed(self.segments):
            out = _join(out, seg) if out else seg
        return out

    def to_validation_error(self, **context: Any) -> ValidationError:
        """Build the public error with envelope context (data_type, index, seq)."""
        return self.error_type(
            self.code, self.detail, path=self.path, expected=self.expected, got=self.got, **context
        )
