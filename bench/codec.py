"""Codec benchmark: records/s per data type, beside raw msgpack and orjson on the same payloads.

For every data type (example payloads from ``robostream.schemas.examples``) it measures:

* ``ingest``: a MessagePack frame (a batch of envelopes) -> validated envelopes (``decode_frame``);
* ``avro_enc``: envelope -> Kafka record, Confluent wire format (``encode_record``);
* ``avro_dec``: Kafka record value -> envelope, ids re-checked (``decode_record``);
* baselines with no validation at all: ``msgpack.packb`` / ``msgpack.unpackb`` and
  ``orjson.dumps`` / ``orjson.loads`` of the same envelope maps.

Prints a table and writes ``bench/results/codec.json`` (machine, versions, parameters, figures).

    python bench/codec.py             # ~1 minute on 2 shared cores
    python bench/codec.py --quick     # tiny input, seconds (used by the smoke test)
"""

from __future__ import annotations

import argparse
import base64
import gc
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import _common
import msgpack
import orjson

from robostream.schemas import (
    DataType,
    Envelope,
    InMemorySchemaResolver,
    build_envelope,
    decode_frame,
    decode_record,
    encode_frame,
    encode_record,
)
from robostream.schemas.examples import example_payload, time_series_payload
from robostream.schemas.packed import pack_time_series

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "codec.json"
COLUMNS = ("ingest", "avro_enc", "avro_dec", "msgpack_pack", "msgpack_unpack", "orjson_dumps", "orjson_loads")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return base64.b64encode(obj).decode()
    raise TypeError(type(obj).__name__)


def _envelopes(data_type: DataType, count: int, samples: int, packed: bool = False) -> list[Envelope]:
    payload = (
        time_series_payload(samples) if data_type == DataType.TIME_SERIES else example_payload(data_type)
    )
    if packed:  # the robot SDK's default for time_series: columns as packed float64/int64 bytes
        payload = pack_time_series(payload)
    base = 1_718_000_000.0
    return [
        build_envelope(
            data_type, payload, robot_id="robot_001", session_id="bench", seq=i, timestamp=base + i / 100
        )
        for i in range(count)
    ]


def _rate(fn: Callable[[], Any], records: int, repeats: int) -> float:
    """Best records/s over ``repeats`` runs of ``fn`` (which handles ``records`` records).

    The cyclic garbage collector is paused while timing (as ``timeit`` does): otherwise full
    collections over the benchmark's own inputs dominate the figures of the big payloads.
    """
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        finally:
            gc.enable()
    return records / best if best > 0 else float("inf")


def _measure(data_type: DataType, count: int, batch: int, samples: int, repeats: int,
             packed: bool = False) -> dict[str, Any]:
    resolver = InMemorySchemaResolver()
    envelopes = _envelopes(data_type, count, samples, packed)
    frames = [encode_frame(envelopes[i : i + batch]) for i in range(0, count, batch)]
    records = [encode_record(e, resolver) for e in envelopes]
    values = [r.value for r in records]
    wires = [e.to_wire() for e in envelopes]
    packed = [msgpack.packb(w, use_bin_type=True) for w in wires]
    dumped = [orjson.dumps(w, default=_json_default) for w in wires]

    def each(fn: Callable[[Any], Any], items: list[Any]) -> Callable[[], None]:
        def loop() -> None:  # results are dropped at once: steady state, no growing heap
            for item in items:
                fn(item)

        return loop

    runs: dict[str, Callable[[], None]] = {
        "ingest": each(decode_frame, frames),
        "avro_enc": each(lambda e: encode_record(e, resolver, ingest_time_ms=0), envelopes),
        "avro_dec": each(lambda v: decode_record(v, resolver), values),
        "msgpack_pack": each(lambda w: msgpack.packb(w, use_bin_type=True), wires),
        "msgpack_unpack": each(lambda p: msgpack.unpackb(p, raw=False), packed),
        "orjson_dumps": each(lambda w: orjson.dumps(w, default=_json_default), wires),
        "orjson_loads": each(orjson.loads, dumped),
    }
    rates = {name: round(_rate(fn, count, repeats), 1) for name, fn in runs.items()}
    return {
        "records": count,
        "bytes": {"avro_value": len(values[0]), "msgpack": len(packed[0]), "json": len(dumped[0])},
        "records_per_s": rates,
    }


def _versions() -> dict[str, str]:
    return _common.versions("robostream", "fastavro", "msgpack", "orjson", "numpy", "confluent-kafka")


def _fmt(rate: float) -> str:
    return f"{rate / 1000:,.1f}k" if rate >= 1000 else f"{rate:,.0f}"


def print_table(results: dict[str, Any]) -> None:
    """Print records/s per data type (rich table when available, plain text otherwise)."""
    header = ["data_type", "avro B", "msgpack B", "json B", *COLUMNS]
    rows = [
        [
            name,
            str(r["bytes"]["avro_value"]),
            str(r["bytes"]["msgpack"]),
            str(r["bytes"]["json"]),
            *(_fmt(r["records_per_s"][c]) for c in COLUMNS),
        ]
        for name, r in results.items()
    ]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
        for line in (header, *rows):
            print("  ".join(cell.rjust(w) for cell, w in zip(line, widths, strict=True)))
        return
    table = Table(title="robostream codec: records/s (k = thousands)")
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; return (and write) the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny input, one repeat (smoke test)")
    parser.add_argument("--records", type=int, default=2000, help="envelopes per data type")
    parser.add_argument("--batch", type=int, default=100, help="envelopes per ingest frame")
    parser.add_argument("--samples", type=int, default=10, help="time_series samples per record")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (best is kept)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report path")
    parser.add_argument("--types", nargs="*", default=[str(dt) for dt in DataType], help="data types")
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.batch, args.repeats = 20, 10, 1
    results = {
        name: _measure(DataType(name), args.records, args.batch, args.samples, args.repeats)
        for name in args.types
    }
    if "time_series" in args.types:
        results["time_series_packed"] = _measure(DataType.TIME_SERIES, args.records, args.batch,
                                                 args.samples, args.repeats, packed=True)
    report = _common.report(
        "codec",
        {
            "records": args.records,
            "batch": args.batch,
            "time_series_samples": args.samples,
            "repeats": args.repeats,
            "quick": args.quick,
            "gc": "paused while timing, as timeit does; best of the repeats is kept",
            "payloads": "robostream.schemas.examples (blobs: images 4 KiB, video 8 KiB, audio 3.2 KiB)",
        },
        results,
        _versions(),
    )
    _common.write_json(report, args.out)
    print_table(results)
    print(f"written: {args.out}")
    return report


if __name__ == "__main__":
    run(sys.argv[1:])
