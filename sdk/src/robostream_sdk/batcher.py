"""Grouping envelopes into batches by count, bytes and time.

Envelopes arrive already packed (MessagePack); a batch frame is the MessagePack array header
followed by them, so nothing is packed twice. A batch closes when it holds ``max_messages``
messages (see :mod:`robostream_sdk.counters`), when the next envelope would take it past
``max_bytes``, when ``max_delay_s`` passed since its first envelope, or when the session changes.
An envelope larger than ``max_bytes`` travels alone. A frame travels in one format (JSON text or
MessagePack binary, see :func:`robostream_sdk.wire.frame_format`), so there is one open batch
per format; seqs interleave between the two, each batch's own seqs increase.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from robostream_sdk.wire import FrameFormat


@dataclass(frozen=True)
class Batch:
    """A closed batch: one frame of envelopes of one session, seqs ``first_seq .. last_seq``.

    ``fmt``: how it goes on the wire (the frame itself is always MessagePack; a JSON batch is
    converted as it is sent)."""

    session_id: str
    frame: bytes
    records: int
    messages: int
    first_seq: int
    last_seq: int
    fmt: FrameFormat = "msgpack"


def array_header(count: int) -> bytes:
    """The MessagePack header of an array of ``count`` items."""
    if count < 16:
        return bytes([0x90 | count])
    if count < 1 << 16:
        return b"\xdc" + struct.pack(">H", count)
    return b"\xdd" + struct.pack(">I", count)


def frame_of(packed: list[bytes]) -> bytes:
    """A batch frame (a MessagePack array) from packed envelopes."""
    return array_header(len(packed)) + b"".join(packed)


@dataclass
class _Open:
    session_id: str
    fmt: FrameFormat
    opened_at: float
    packed: list[bytes] = field(default_factory=list)
    nbytes: int = 0
    messages: int = 0
    first_seq: int = 0
    last_seq: int = 0


class Batcher:
    """Collects packed envelopes; :meth:`add` and :meth:`take_due` hand out closed batches."""

    def __init__(self, max_messages: int = 100, max_bytes: int = 1024 * 1024, max_delay_s: float = 0.05,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_messages < 1 or max_bytes < 1 or max_delay_s < 0:
            raise ValueError("expected max_messages >= 1, max_bytes >= 1 and max_delay_s >= 0")
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.max_delay_s = max_delay_s
        self._clock = clock
        self._open: dict[FrameFormat, _Open] = {}

    @property
    def messages(self) -> int:
        """Messages in the open batches."""
        return sum(o.messages for o in self._open.values())

    @property
    def deadline(self) -> float | None:
        """When the oldest open batch must close (clock time), None when there is none."""
        if not self._open:
            return None
        return min(o.opened_at for o in self._open.values()) + self.max_delay_s

    def add(self, packed: bytes, *, seq: int, messages: int, session_id: str,
            fmt: FrameFormat = "msgpack") -> list[Batch]:
        """Add one packed envelope going as ``fmt``; returns the batches this closed (none to three)."""
        closed: list[Batch] = []
        if any(o.session_id != session_id for o in self._open.values()):
            closed += self.take()
        current = self._open.get(fmt)
        if current is not None and current.nbytes + len(packed) > self.max_bytes:
            closed.append(self._close(fmt))
            current = None
        if current is None:
            current = self._open[fmt] = _Open(session_id, fmt, self._clock(), first_seq=seq)
        current.packed.append(packed)
        current.nbytes += len(packed)
        current.messages += messages
        current.last_seq = seq
        if current.messages >= self.max_messages or current.nbytes >= self.max_bytes:
            closed.append(self._close(fmt))
        return closed

    def take_due(self, now: float | None = None) -> list[Batch]:
        """The open batches whose ``max_delay_s`` has passed, oldest first."""
        moment = self._clock() if now is None else now
        due = [o for o in self._open.values() if o.opened_at + self.max_delay_s <= moment]
        return [self._close(o.fmt) for o in sorted(due, key=lambda o: o.first_seq)]

    def take(self) -> list[Batch]:
        """Every open batch, whatever its size (flush, end of session), oldest first."""
        return [self._close(o.fmt) for o in sorted(self._open.values(), key=lambda o: o.first_seq)]

    def _close(self, fmt: FrameFormat) -> Batch:
        current = self._open.pop(fmt)
        return Batch(current.session_id, frame_of(current.packed), len(current.packed), current.messages,
                     current.first_seq, current.last_seq, current.fmt)
