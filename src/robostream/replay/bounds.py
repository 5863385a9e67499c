"""Command-line values of replay, export and offsets: times, durations, offsets and speeds.

* a **time**: ISO-8601 (``2024-06-10T12:00:00Z``; without an offset it is UTC, robot time is UTC),
  ``now``, or a duration ago (``-10m``, ``-PT1H30M``);
* a **duration**: ISO-8601 (``PT10M``, ``P1DT2H``, as ``kafka-consumer-groups --by-duration``) or
  compact (``90s``, ``10m``, ``1h30m``, ``2d``, ``500ms``);
* a **bound** (``--from`` / ``--to``): a time, or an integer offset (applied to every partition
  read), or ``earliest`` / ``latest``;
* a **speed**: ``1x``, ``10x``, ``0.5x`` (the ``x`` is optional) or ``max``;
* **data types**: ``--types time_series,images`` (repeatable; default all 17).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from robostream.errors import RobostreamError
from robostream.schemas.datatypes import DataType
from robostream.times import datetime_to_us

_ISO_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_COMPACT_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_COMPACT_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SPEED = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)x?$")

DURATION_HELP = "ISO-8601 (PT10M, P1DT2H) or compact (90s, 10m, 1h30m, 2d)"
TIME_HELP = "ISO-8601 (2024-06-10T12:00:00Z; no offset means UTC), 'now' or a duration ago (-10m)"


class BoundError(RobostreamError, ValueError):
    """A value on the command line that is not a time, duration, offset or speed."""


@dataclass(frozen=True, slots=True)
class Bound:
    """Where a read starts or stops: a time (aware, UTC) or an offset (per partition)."""

    time: datetime | None = None
    offset: int | None = None

    def __post_init__(self) -> None:
        if (self.time is None) == (self.offset is None):
            raise ValueError("a Bound is a time or an offset")
        if self.time is not None and self.time.tzinfo is None:
            raise ValueError("a Bound's time must be timezone-aware")
        if self.offset is not None and self.offset < 0:
            raise ValueError("a Bound's offset is >= 0")

    @classmethod
    def at_time(cls, moment: datetime) -> Bound:
        return cls(time=moment)

    @classmethod
    def at_offset(cls, offset: int) -> Bound:
        return cls(offset=offset)

    @property
    def time_us(self) -> int | None:
        """The time in microseconds since the epoch (``None`` for an offset)."""
        if self.time is None:
            return None
        return datetime_to_us(self.time)

    def __str__(self) -> str:
        return self.time.isoformat() if self.time is not None else f"offset {self.offset}"


def parse_duration(text: str) -> timedelta:
    """``PT10M`` / ``10m`` / ``1h30m`` / ``500ms`` -> a positive or zero timedelta."""
    value = text.strip()
    iso = _ISO_DURATION.match(value.upper())
    if iso and value.upper() not in ("P", "PT"):
        parts = {k: float(v) for k, v in iso.groupdict().items() if v}
        return timedelta(**parts)
    lowered = value.lower()
    if lowered and _COMPACT_PART.sub("", lowered) == "":
        seconds = sum(float(n) * _COMPACT_UNITS[unit] for n, unit in _COMPACT_PART.findall(lowered))
        return timedelta(seconds=seconds)
    raise BoundError(f"not a duration: {text!r}; expected {DURATION_HELP}")


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """An aware UTC datetime from ISO-8601, ``now`` or ``-<duration>`` (that long ago)."""
    value = text.strip()
    current = now or datetime.now(UTC)
    if value.lower() == "now":
        return current
    if value.startswith("-"):
        return current - parse_duration(value[1:])
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BoundError(f"not a time: {text!r}; expected {TIME_HELP}") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_bound(text: str | None, *, now: datetime | None = None) -> Bound | None:
    """``--from`` / ``--to``: an offset (digits), a time, ``earliest`` (offset 0) or ``latest``
    (``None``: the end of each partition when the read starts)."""
    if text is None:
        return None
    value = text.strip()
    if value.lower() in ("latest", "end"):
        return None
    if value.lower() in ("earliest", "beginning", "start"):
        return Bound.at_offset(0)
    if value.isdigit():
        return Bound.at_offset(int(value))
    return Bound.at_time(parse_time(value, now=now))


def parse_speed(text: str) -> float | None:
    """``10x`` -> 10.0, ``0.5x`` -> 0.5, ``max`` -> ``None`` (as fast as possible)."""
    value = text.strip().lower()
    if value in ("max", "maximum", "inf"):
        return None
    match = _SPEED.match(value)
    speed = float(match.group(1)) if match else 0.0
    if speed <= 0:
        raise BoundError(f"not a speed: {text!r}; expected e.g. 1x, 10x, 0.5x or max")
    return speed


def parse_types(values: Sequence[str] | None) -> tuple[DataType, ...]:
    """``--types time_series,images --types log`` -> data types in catalogue order (all if none)."""
    names = [n.strip() for value in values or () for n in value.split(",") if n.strip()]
    if not names:
        return tuple(DataType)
    known = {dt.value for dt in DataType}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BoundError(f"unknown data type(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return tuple(dt for dt in DataType if dt.value in names)
