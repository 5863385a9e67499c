"""Query parameters: parsed and checked before anything reaches Redis, MongoDB or S3.

Every id goes through :func:`robostream.config.validate_id`, every metric name through the
sinks' :func:`~robostream.sinks.keys.validate_metric`; a bad value is a ``400`` naming the
parameter, what came and what is expected.

Each route declares its query as a :class:`QueryParams` model (beside its handler): a field per
parameter, annotated with its :class:`Param` (how it is parsed and how ``openapi.json``
documents it). The model is the one list of what a route accepts: a parameter it does not
name is a ``400 unknown_parameter``, and the OpenAPI document's parameters are made from it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict

from robostream.api.errors import ApiError, bad_request
from robostream.config import ID_PATTERN, ApiSettings, validate_id
from robostream.sinks.keys import validate_metric
from robostream.times import datetime_to_us, micros_to_datetime

MAX_TIME_US = 7_258_118_400 * 1_000_000  # 2200-01-01, as the envelope's timestamps
TIME_EXPECTED = "an ISO-8601 time with a UTC offset (2026-11-25T10:00:00Z) or seconds since the epoch"


def required(query: Mapping[str, str], name: str) -> str:
    value = query.get(name)
    if value is None or value == "":
        raise bad_request("missing_parameter", f"query parameter {name!r} is required")
    return value


def id_param(query: Mapping[str, str], name: str, *, optional: bool = False) -> str | None:
    """A robot/session/camera id from the query (``invalid_id`` unless it is a safe id)."""
    value = query.get(name)
    if value is None or value == "":
        if optional:
            return None
        raise bad_request("missing_parameter", f"query parameter {name!r} is required")
    return checked_id(value, name)


def checked_id(value: str, what: str) -> str:
    """``value`` if it is a safe id, else a ``400 invalid_id``."""
    try:
        return validate_id(value, what)
    except ValueError as exc:
        raise bad_request("invalid_id", str(exc)) from None


def metric_name(value: str, what: str = "metric") -> str:
    """A metric name or prefix (``pose.position.x``, ``joints``), else ``400 invalid_metric``."""
    try:
        name = validate_metric(value)
    except ValueError as exc:
        raise bad_request("invalid_metric", f"{what}: {exc}") from None
    if name.endswith("."):
        raise bad_request("invalid_metric", f"{what}: {value!r} must not end with '.'")
    return name


def parse_time_us(text: str, name: str) -> int:
    """An ISO-8601 time with offset, or seconds since the epoch -> µs since the epoch (UTC)."""
    micros: int | None = None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if math.isfinite(seconds):
        micros = round(seconds * 1_000_000)
    elif not text.strip().lower().lstrip("+-").startswith(("nan", "inf")):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            micros = datetime_to_us(moment)
    if micros is None or not 0 <= micros < MAX_TIME_US:
        raise bad_request("invalid_time", f"{name}={text!r}: expected {TIME_EXPECTED}, 1970..2200")
    return micros


def time_param(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    return None if value is None or value == "" else parse_time_us(value, name)


def time_range(query: Mapping[str, str]) -> tuple[int | None, int | None]:
    """``from`` and ``to`` (µs, either may be absent); ``400`` unless from <= to."""
    start, end = time_param(query, "from"), time_param(query, "to")
    if start is not None and end is not None and start > end:
        raise bad_request("invalid_range", "'from' must not be after 'to'")
    return start, end


def int_param(query: Mapping[str, str], name: str, default: int | None, *, low: int = 1,
              high: int | None = None) -> int | None:
    """An integer in ``[low, high]`` (``400 invalid_parameter`` otherwise)."""
    value = query.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise bad_request("invalid_parameter", f"{name}={value!r}: expected an integer {bound}")
    return number


def choice_param(query: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = query.get(name) or default
    if value not in choices:
        raise bad_request("invalid_parameter", f"{name}={value!r}: expected one of {', '.join(choices)}")
    return value


def list_param(query: Mapping[str, str], name: str) -> list[str]:
    """A comma-separated list (empty items dropped, order kept, duplicates removed)."""
    raw = query.get(name) or ""
    return list(dict.fromkeys(item.strip() for item in raw.split(",") if item.strip()))


def micros_to_iso(micros: int) -> str:
    """µs since the epoch -> ``2026-11-25T10:00:00.123456Z``."""
    return micros_to_datetime(micros).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def not_acceptable(offered: tuple[str, ...]) -> ApiError:
    return ApiError(406, "not_acceptable", f"this resource is available as {', '.join(offered)}")


# -- query models ------------------------------------------------------------------------------------

Schema = dict[str, Any]
#: ``(value or None when absent or empty, parameter name, the API settings) -> parsed value``
Parser = Callable[[str | None, str, ApiSettings], Any]


@dataclass(frozen=True)
class Param:
    """One query parameter: how it is parsed and how ``openapi.json`` documents it.

    ``limit`` names the :class:`~robostream.config.ApiSettings` field bounding it (documented
    as the schema's ``maximum``).
    """

    parse: Parser
    schema: Schema
    description: str
    required: bool = False
    limit: str | None = None

    def openapi(self, name: str, limits: Mapping[str, int]) -> Schema:
        """The OpenAPI parameter object (``limits``: the settings' values by field name)."""
        schema = dict(self.schema)
        if self.limit is not None:
            schema["maximum"] = limits[self.limit]
        return {"name": name, "in": "query", "required": self.required, "description": self.description,
                "schema": schema}


class QueryParams(BaseModel):
    """The query of one route; its fields, in order, are the parameters it accepts.

    A field's query name is its name without a trailing ``_`` (``from_`` is ``?from=``); a
    ``from_`` declared before ``to`` is checked not to be after it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def params(cls) -> dict[str, Param]:
        """Query name -> :class:`Param`, in declaration order."""
        out = {}
        for field_name, info in cls.model_fields.items():
            spec = next((m for m in info.metadata if isinstance(m, Param)), None)
            if spec is None:
                raise TypeError(f"{cls.__name__}.{field_name} has no Param annotation")
            out[field_name.rstrip("_")] = spec
        return out

    @classmethod
    def parse(cls, query: Mapping[str, str], api: ApiSettings) -> Self:
        """The parsed query; ``400`` for an unknown parameter, then for each bad one in order."""
        params = cls.params()
        unknown = [name for name in dict.fromkeys(query) if name not in params]
        if unknown:
            raise unknown_parameters(unknown, params)
        values = {}
        for field_name, (name, spec) in zip(cls.model_fields, params.items(), strict=True):
            raw = query.get(name)
            values[field_name] = spec.parse(raw if raw else None, name, api)
            start, end = values.get("from_"), values.get("to")
            if name == "to" and isinstance(start, int) and isinstance(end, int) and start > end:
                raise bad_request("invalid_range", "'from' must not be after 'to'")
        return cls.model_validate(values)

    @classmethod
    def openapi(cls, limits: Mapping[str, int]) -> list[Schema]:
        """The route's query parameters as OpenAPI parameter objects."""
        return [spec.openapi(name, limits) for name, spec in cls.params().items()]


class NoParams(QueryParams):
    """A route that takes no query parameters."""


def unknown_parameters(names: list[str], accepted: Mapping[str, object]) -> ApiError:
    """``400 unknown_parameter`` naming ``names`` and what the route accepts."""
    listed = ", ".join(repr(name) for name in names)
    what = f"unknown query parameter{'s' if len(names) > 1 else ''} {listed}"
    takes = f"accepted: {', '.join(accepted)}" if accepted else "this route takes no query parameters"
    return bad_request("unknown_parameter", f"{what} ({takes})")


ID_SCHEMA: Schema = {"type": "string", "pattern": ID_PATTERN, "maxLength": 64}
TIME_DESCRIPTION = ("ISO-8601 time with a UTC offset (2026-11-25T10:00:00Z) or seconds since the "
                    "Unix epoch (1795600000.5)")


def id_spec(what: str, *, required: bool = True) -> Param:
    """A robot/session/camera id (``missing_parameter``, ``invalid_id``)."""

    def parse(value: str | None, name: str, _api: ApiSettings) -> str | None:
        return id_param({name: value} if value else {}, name, optional=not required)

    return Param(parse, ID_SCHEMA, f"{what} id (letters, digits, '_', '-', '.'; no '..')", required)


def time_spec(description: str) -> Param:
    """A time (µs since the epoch; ``invalid_time``)."""

    def parse(value: str | None, name: str, _api: ApiSettings) -> int | None:
        return time_param({name: value} if value else {}, name)

    return Param(parse, {"type": "string", "example": "2026-11-25T10:00:00Z"},
                 f"{description}: {TIME_DESCRIPTION}")


def int_spec(description: str, *, default: int | None = None, default_from: str | None = None,
             high: int | None = None, limit: str | None = None) -> Param:
    """An integer from 1 to ``high`` (or to the setting ``limit``); absent: ``default`` (or the
    setting ``default_from``)."""

    def parse(value: str | None, name: str, api: ApiSettings) -> int | None:
        fallback = getattr(api, default_from) if default_from else default
        top = getattr(api, limit) if limit else high
        return int_param({name: value} if value else {}, name, fallback, high=top)

    schema: Schema = {"type": "integer", "minimum": 1}
    if high is not None:
        schema["maximum"] = high
    if default is not None:
        schema["default"] = default
    return Param(parse, schema, description, limit=limit)


def choice_spec(choices: tuple[str, ...], description: str, *, default: str | None = None) -> Param:
    """One of ``choices`` (absent: ``default``, which may be None)."""

    def parse(value: str | None, name: str, _api: ApiSettings) -> str | None:
        if value is None:
            return default
        return choice_param({name: value}, name, choices, value)

    schema: Schema = {"type": "string", "enum": list(choices)}
    if default is not None:
        schema["default"] = default
    return Param(parse, schema, description)


def list_spec(description: str, example: str, item: Callable[[list[str]], list[str]]) -> Param:
    """A comma-separated list, checked by ``item`` (which may also fill in a default)."""

    def parse(value: str | None, name: str, _api: ApiSettings) -> tuple[str, ...]:
        return tuple(item(list_param({name: value} if value else {}, name)))

    return Param(parse, {"type": "string", "example": example}, description)


def text_spec(description: str, schema: Schema | None = None) -> Param:
    """A string passed on as it came (checked by its route, if at all)."""

    def parse(value: str | None, _name: str, _api: ApiSettings) -> str | None:
        return value

    return Param(parse, schema or {"type": "string"}, description)
