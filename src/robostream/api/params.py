"""Query parameters: parsed and checked before anything reaches Redis, MongoDB or S3.

Every id goes through :func:`robostream.config.validate_id`, every metric name through the
sinks' :func:`~robostream.sinks.keys.validate_metric`; a bad value is a ``400`` naming the
parameter, what came and what is expected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime

from robostream.api.errors import ApiError, bad_request
from robostream.config import validate_id
from robostream.sinks.keys import validate_metric

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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
            micros = (moment - _EPOCH) // datetime.resolution
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
    moment = _EPOCH + micros * datetime.resolution
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def micros_to_datetime(micros: int) -> datetime:
    """µs since the epoch -> aware UTC datetime (how MongoDB documents keep times)."""
    return _EPOCH + micros * datetime.resolution


def datetime_to_us(moment: datetime) -> int:
    """An aware (or naive UTC, as pymongo returns it) datetime -> µs since the epoch."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // datetime.resolution


def not_acceptable(offered: tuple[str, ...]) -> ApiError:
    return ApiError(406, "not_acceptable", f"this resource is available as {', '.join(offered)}")
