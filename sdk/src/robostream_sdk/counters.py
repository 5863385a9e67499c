"""What a robot client did, counted.

A *message* is one reading: one row of a ``time_series`` record (one timestamp of pose, joints,
IMU ...), or one envelope of any other data type (an image, a log line, a file). A *record* is one
envelope. The seed's "30,000 messages in 300 s" counts 100 Hz telemetry rows the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from robostream_sdk.contract import DataType
from robostream_sdk.packed import count


def messages_in(data_type: DataType | str, payload: dict[str, Any]) -> int:
    """Messages in one envelope: its rows for ``time_series``, else 1."""
    if data_type == DataType.TIME_SERIES:
        return count(payload.get("t") or ()) or 1
    return 1


@dataclass
class Counters:
    """Client counters, in messages unless the name says otherwise.

    ``dropped`` stays 0 unless the spool's size cap (``batching.spool_max_bytes``) was reached.
    ``corrupt_batches`` stays 0 unless a spool file was damaged on disk: those batches were moved to
    ``.corrupt`` files beside their segment and are not resent (a warning says which).
    ``rejected`` are messages the gateway refused for good (they are on its dead letter queue).
    """

    created: int = 0  # accepted by send()
    recovered: int = 0  # found unacked in the spool at start (a previous run's)
    sent: int = 0  # put on the wire for the first time
    resent: int = 0  # put on the wire again (reconnect, restart, retriable nack)
    acked: int = 0  # durable in Kafka (the gateway's ack)
    rejected: int = 0  # nacked for good (not retriable)
    dropped: int = 0  # discarded at the spool's size cap
    corrupt_batches: int = 0  # batches (not messages) found damaged in the spool at start, set aside
    spooled: int = 0  # gauge: in the spool, not yet acked
    batching: int = 0  # gauge: in the open batch, not yet spooled
    records_sent: int = 0  # envelopes, first sends
    bytes_sent: int = 0  # frame bytes on the wire, resends included
    batches_sent: int = 0
    batches_acked: int = 0
    connects: int = 0
    disconnects: int = 0
    slow_downs: int = 0
    rpc_requests: int = 0

    @property
    def lost(self) -> int:
        """Messages neither acked, nor waiting (spool or open batch), nor rejected: ``dropped``."""
        handed = self.created + self.recovered
        return max(0, handed - self.acked - self.spooled - self.batching - self.rejected)

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter (and ``lost``)."""
        values: dict[str, int] = asdict(self)
        values["lost"] = self.lost
        return values
