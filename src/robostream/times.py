"""Time as robostream keeps it: integer microseconds since the Unix epoch, UTC.

The one epoch and the conversions every part uses (envelopes, Avro ``timestamp-micros``,
MongoDB documents, the API's query times).
"""

from __future__ import annotations

from datetime import UTC, datetime

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = datetime.resolution  # timedelta(microseconds=1)

#: Durations in microseconds.
SECOND_US = 1_000_000
MINUTE_US = 60 * SECOND_US
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US


def micros_to_datetime(micros: int) -> datetime:
    """µs since the epoch -> aware UTC datetime."""
    return EPOCH + int(micros) * MICROSECOND


def datetime_to_us(moment: datetime) -> int:
    """An aware datetime (a naive one is taken as UTC, as pymongo returns it) -> µs since the epoch."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // MICROSECOND
