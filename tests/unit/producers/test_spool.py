"""The disk spool: append, ack, rotation by size and age, deletion, the cap, recovery (torn tails,
corrupt records, torn ack logs, the first segment format), the lock."""

from __future__ import annotations

import logging
import tempfile
import zlib
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robostream_sdk import Spool, SpoolLockedError
from robostream_sdk.batcher import Batch, frame_of
from robostream_sdk.spool import MAGIC, MAGIC_V1, RECORD_V1, SpoolEntry


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def batch(first_seq: int, records: int = 4, pad: int = 100, session: str = "s1") -> Batch:
    envelopes = [msgpack.packb({"seq": first_seq + i, "pad": b"x" * pad}) for i in range(records)]
    return Batch(session, frame_of(envelopes), records, records, first_seq, first_seq + records - 1)


def segments(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.seg"))


def test_a_spooled_batch_reads_back_and_leaves_when_acked(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    entry = spool.append(batch(0))
    assert entry is not None
    assert msgpack.unpackb(spool.read(entry))[3]["seq"] == 3
    assert spool.pending() == [entry] and spool.pending_messages == 4
    assert spool.ack(entry.id) is entry
    assert spool.pending() == [] and spool.pending_messages == 0
    assert spool.ack(entry.id) is None
    spool.close()


def test_segments_rotate_at_their_size_limit_and_acked_ones_are_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=2000)
    entries = [spool.append(batch(4 * i, pad=200)) for i in range(12)]
    assert all(e is not None for e in entries)
    names = segments(tmp_path)
    assert len(names) >= 5
    assert all(p.stat().st_size <= 2000 for p in tmp_path.glob("*.seg"))
    for entry in entries[:-1]:
        assert entry is not None
        spool.ack(entry.id)
    # every sealed segment was fully acked: only the active one (holding the last batch) is left
    assert segments(tmp_path) == [names[-1]]
    assert not [p for p in tmp_path.glob("*.acks") if not p.with_suffix(".seg").exists()]
    spool.close()


def test_the_active_segment_is_sealed_when_too_old(tmp_path: Path) -> None:
    clock = FakeClock()
    spool = Spool(tmp_path, segment_age_s=60, clock=clock)
    first = spool.append(batch(0))
    clock.now += 61
    second = spool.append(batch(4))
    assert first is not None and second is not None
    assert first.segment is not second.segment and len(segments(tmp_path)) == 2
    spool.ack(second.id)
    clock.now += 61
    spool.maintain()  # the active segment is old and fully acked: sealed and deleted
    assert len(segments(tmp_path)) == 1
    spool.close()


def test_unacked_batches_survive_a_restart_and_acked_ones_do_not(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=1500)
    entries = [spool.append(batch(4 * i, pad=150)) for i in range(8)]
    for entry in entries[::2]:
        assert entry is not None
        spool.ack(entry.id)
    spool.close()
    again = Spool(tmp_path, segment_bytes=1500)
    pending = again.pending()
    assert [e.first_seq for e in pending] == [4, 12, 20, 28]
    assert all(e.recovered for e in pending)
    assert msgpack.unpackb(again.read(pending[-1]))[0]["seq"] == 28
    newer = again.append(batch(32))
    assert newer is not None and newer.id > max(e.id for e in pending)
    again.close()


def test_a_torn_last_record_is_cut_off_on_recovery(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path)
    spool.append(batch(0))
    spool.append(batch(4))
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    segment.write_bytes(segment.read_bytes()[:-7])  # a crash in the middle of the second write
    with caplog.at_level(logging.WARNING):
        again = Spool(tmp_path)
    assert [e.first_seq for e in again.pending()] == [0]
    assert "torn record" in caplog.text
    again.close()


def test_at_the_cap_the_oldest_segment_is_dropped_with_a_warning(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    dropped: list[SpoolEntry] = []
    spool = Spool(tmp_path, segment_bytes=2000, max_bytes=6000, on_drop=dropped.extend)
    with caplog.at_level(logging.WARNING):
        for i in range(20):
            spool.append(batch(4 * i, pad=200))
    assert spool.size_bytes <= 6000
    assert dropped and dropped[0].first_seq == 0
    assert "reached its cap" in caplog.text and "spool_max_bytes" in caplog.text
    kept = [e.first_seq for e in spool.pending()]
    assert kept == sorted(kept) and kept[-1] == 76
    assert len(kept) + len(dropped) == 20
    spool.close()


def test_one_process_per_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    with pytest.raises(SpoolLockedError, match="in use by another process"):
        Spool(tmp_path)
    spool.close()
    Spool(tmp_path).close()


# -- damage on disk: corruption is set aside, only a torn tail is cut -------------------------------


def spool_of(folder: Path, count: int, **options: Any) -> list[SpoolEntry]:
    """``count`` batches of 4 messages (first seqs 0, 4, 8 ...) spooled in one segment, then closed."""
    spool = Spool(folder, **options)
    entries = [spool.append(batch(4 * i)) for i in range(count)]
    spool.close()
    return [e for e in entries if e is not None]


def record_spans(entries: list[SpoolEntry]) -> list[tuple[int, int]]:
    """Where each batch's record (header, metadata, frame) lies in its segment file."""
    ends = [e.offset + e.size for e in entries]
    return list(zip([len(MAGIC), *ends[:-1]], ends, strict=True))


def flip(path: Path, *positions: int) -> None:
    data = bytearray(path.read_bytes())
    for position in positions:
        data[position] ^= 0xFF
    path.write_bytes(bytes(data))


def reopen(folder: Path) -> tuple[Spool, dict[int, bytes]]:
    """The spool opened again, and the frame of each pending batch by first seq."""
    spool = Spool(folder)
    return spool, {e.first_seq: spool.read(e) for e in spool.pending()}


def test_a_corrupt_record_mid_segment_is_set_aside_and_the_intact_ones_after_it_are_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    entries = spool_of(tmp_path, 3)
    segment = next(tmp_path.glob("*.seg"))
    (start, end) = record_spans(entries)[1]
    flip(segment, entries[1].offset + entries[1].size // 2)  # one byte of the second batch's frame
    with caplog.at_level(logging.WARNING):
        spool, frames = reopen(tmp_path)
    assert sorted(frames) == [0, 8]
    assert frames == {0: batch(0).frame, 8: batch(8).frame}
    assert spool.corrupt_batches == 1
    assert "corrupt bytes" in caplog.text and "after batch id 1, before 3" in caplog.text
    assert "torn" not in caplog.text
    [aside] = tmp_path.glob("*.corrupt")
    assert aside.read_bytes() != batch(4).frame and len(aside.read_bytes()) == end - start
    spool.close()
    again, frames = reopen(tmp_path)  # set aside once: the next start finds a sound segment
    assert sorted(frames) == [0, 8] and again.corrupt_batches == 0
    for entry in again.pending():
        again.ack(entry.id)
    assert again.pending() == []
    again.close()


def test_a_second_corruption_at_the_same_place_keeps_both_corrupt_files(tmp_path: Path) -> None:
    entries = spool_of(tmp_path, 4)
    segment = next(tmp_path.glob("*.seg"))
    flip(segment, entries[1].offset + 9)
    Spool(tmp_path).close()  # the segment is rewritten: the third batch now starts where the second did
    flip(segment, entries[1].offset + 9)
    spool, frames = reopen(tmp_path)
    assert sorted(frames) == [0, 12] and spool.corrupt_batches == 1
    assert len(list(tmp_path.glob("*.corrupt*"))) == 2
    spool.close()


def test_a_damaged_format_marker_does_not_lose_the_segment(tmp_path: Path) -> None:
    spool_of(tmp_path, 3)
    segment = next(tmp_path.glob("*.seg"))
    flip(segment, 2)
    spool, frames = reopen(tmp_path)
    assert sorted(frames) == [0, 4, 8] and segment.read_bytes().startswith(MAGIC)
    spool.close()
    junk = tmp_path / f"{9:016d}.seg"
    junk.write_bytes(b"not a spool segment at all")
    Spool(tmp_path).close()
    assert not junk.exists() and junk.with_suffix(".bad").exists()


@pytest.mark.parametrize("length", [0xFFFF_FFF0, 3, 0])
def test_a_corrupt_length_field_does_not_hide_the_records_after_it(tmp_path: Path, length: int) -> None:
    entries = spool_of(tmp_path, 3)
    segment = next(tmp_path.glob("*.seg"))
    start, _ = record_spans(entries)[1]
    data = bytearray(segment.read_bytes())
    data[start + 8:start + 12] = length.to_bytes(4, "big")  # the second record's frame length
    segment.write_bytes(bytes(data))
    spool, frames = reopen(tmp_path)
    assert frames == {0: batch(0).frame, 8: batch(8).frame}
    assert spool.corrupt_batches == 1
    spool.close()


def test_a_torn_record_is_still_cut_off_without_a_corrupt_file(tmp_path: Path) -> None:
    entries = spool_of(tmp_path, 3)
    segment = next(tmp_path.glob("*.seg"))
    start, _ = record_spans(entries)[2]
    segment.write_bytes(segment.read_bytes()[:start + 30])  # the crash came mid-way the third write
    spool, frames = reopen(tmp_path)
    assert sorted(frames) == [0, 4] and spool.corrupt_batches == 0
    assert not list(tmp_path.glob("*.corrupt")) and segment.stat().st_size == start
    spool.close()


def test_a_damaged_last_record_of_full_length_is_set_aside_not_dropped_silently(tmp_path: Path) -> None:
    entries = spool_of(tmp_path, 3)
    flip(next(tmp_path.glob("*.seg")), entries[2].offset + 5)
    spool, frames = reopen(tmp_path)
    assert sorted(frames) == [0, 4] and spool.corrupt_batches == 1
    assert len(list(tmp_path.glob("*.corrupt"))) == 1
    spool.close()


def test_a_torn_ack_log_loses_no_unacked_batch_and_later_acks_still_count(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    entries = [spool.append(batch(4 * i)) for i in range(4)]
    for entry in entries[:2]:
        assert entry is not None
        spool.ack(entry.id)
    spool.close()
    acks = next(tmp_path.glob("*.acks"))
    acks.write_bytes(acks.read_bytes()[:-3])  # the crash came in the middle of writing the second ack
    again, frames = reopen(tmp_path)
    assert sorted(frames) == [4, 8, 12]  # the half-written ack is not trusted: that batch is resent
    for entry in again.pending()[:2]:
        again.ack(entry.id)
    again.close()
    last, frames = reopen(tmp_path)
    assert sorted(frames) == [12]
    last.close()


def test_with_fsync_batches_are_written_acked_and_recovered(tmp_path: Path) -> None:
    spool = Spool(tmp_path, fsync=True, segment_bytes=1200)
    entries = [spool.append(batch(4 * i, pad=150)) for i in range(6)]
    assert len(segments(tmp_path)) >= 2
    for entry in entries[:3]:
        assert entry is not None
        spool.ack(entry.id)
    spool.close()
    again, frames = reopen(tmp_path)
    assert frames == {seq: batch(seq, pad=150).frame for seq in (12, 16, 20)}
    assert again.append(batch(24)) is not None
    again.close()


def v1_segment(folder: Path, batches: list[Batch]) -> Path:
    """A segment as the first format wrote it (no sync marker, no header checksum)."""
    parts = [MAGIC_V1]
    for number, item in enumerate(batches, start=1):
        meta = msgpack.packb({"id": number, "session": item.session_id, "first": item.first_seq,
                              "last": item.last_seq, "records": item.records, "messages": item.messages,
                              "t": 1.0}, use_bin_type=True)
        crc = zlib.crc32(item.frame, zlib.crc32(meta))
        parts.append(RECORD_V1.pack(len(meta), len(item.frame), crc) + meta + item.frame)
    path = folder / f"{1:016d}.seg"
    path.write_bytes(b"".join(parts))
    return path


def test_segments_of_the_first_format_are_read_and_resynchronised(tmp_path: Path) -> None:
    batches = [batch(4 * i) for i in range(3)]
    path = v1_segment(tmp_path, batches)
    spool, frames = reopen(tmp_path)
    assert frames == {b.first_seq: b.frame for b in batches}
    spool.close()
    record = (path.stat().st_size - len(MAGIC_V1)) // 3
    second = len(MAGIC_V1) + record
    flip(path, second + 2, second + record // 2)  # its metadata length and its frame
    spool, frames = reopen(tmp_path)
    assert sorted(frames) == [0, 8] and spool.corrupt_batches == 1
    assert spool.append(batch(12)) is not None and segments(tmp_path)[-1].startswith("0000000000000004")
    spool.close()


@settings(max_examples=60, deadline=None)
@given(count=st.integers(2, 6), flips=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=4))
def test_random_byte_flips_never_lose_a_record_whose_bytes_are_intact(count: int, flips: list[float]) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        entries = spool_of(folder, count)
        segment = next(folder.glob("*.seg"))
        size = segment.stat().st_size
        positions = {int(f * size) for f in flips}  # the format marker at the start included
        flip(segment, *positions)
        spool, frames = reopen(folder)
        intact = {e.first_seq for e, (start, end) in zip(entries, record_spans(entries), strict=True)
                  if not any(start <= p < end for p in positions)}
        assert intact <= set(frames)
        assert all(frame == batch(seq).frame for seq, frame in frames.items())  # nothing damaged comes back
        if frames or min(positions) >= len(MAGIC):  # else nothing shows it is a segment: set aside as .bad
            assert (spool.corrupt_batches >= 1) == (len(frames) < count)
        spool.close()


async def test_the_client_counts_corrupt_batches_and_resends_the_intact_ones(tmp_path: Path) -> None:
    from tests.unit.producers.test_client_protocol import ScriptedGateway, make_client

    entries = spool_of(tmp_path / "robot_001", 3)
    flip(next((tmp_path / "robot_001").glob("*.seg")), entries[1].offset + 3)
    gateway = ScriptedGateway()
    client = make_client(tmp_path, gateway)
    await client.start()
    assert await client.flush(5)
    counters = client.counters
    assert counters.corrupt_batches == 1 and counters.recovered == 8 and counters.acked == 8
    assert gateway.seqs() == [0, 1, 2, 3, 8, 9, 10, 11]
    await client.close()
