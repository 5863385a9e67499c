"""The robot SDK's cost on the robot: CPU per 1,000 samples sent and resident memory, beside a bare
websockets client sending the same frames (peak RSS of the robot process, from Linux /proc).

A small acking peer (a separate process, so its CPU is not counted) answers every batch frame the
way the gateway does (``{"type": "ack", "batch": n, "seq": ...}``); the robot side runs in its own
fresh process per case so its RSS is its own:

* ``sdk``: ``SyncRobotClient.send`` per envelope from a loop, then ``flush`` (validation, seq,
  column packing, batching, the disk spool, the window of unacked batches, resends on ack);
* ``bare``: the same envelopes built and packed in the loop (columns packed as the SDK packs them),
  batched by 100 into the same MessagePack frames, sent over one ``websockets`` connection,
  waiting for every ack at the end: what a hand-written client costs at least.

Two shapes: 1 sample per envelope (a control loop sending each tick) and 100 samples per envelope
(a client that batches rows itself). The machine may be shared: the load average is in the JSON.

    python bench/sdk.py                 # table + bench/results/sdk.json
    python bench/sdk.py --quick         # tiny (the smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import RESULTS, ROOT, print_table, report, versions, write_json

DEFAULT_OUT = RESULTS / "sdk.json"

#: The acking peer: answers each batch frame (a MessagePack list) with the gateway's ack.
PEER = """
import asyncio, sys
import msgpack
from websockets.asyncio.server import serve

async def handle(ws):
    batch = 0
    async for frame in ws:
        items = msgpack.unpackb(frame, raw=False) if isinstance(frame, bytes) else None
        if not isinstance(items, list):
            continue  # a control message (session_event)
        batch += 1
        seq = max((e.get("seq", -1) for e in items), default=None)
        await ws.send(msgpack.packb({"type": "ack", "batch": batch, "seq": seq, "count": len(items),
                                     "rejected": 0}))

async def main():
    async with serve(handle, "127.0.0.1", 0, max_size=2**25) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"""

#: One robot-side case; prints its figures as JSON.
ROBOT = """
import json, sys, time
kind, url, envelopes, rows, spool = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

def payload(i):
    xs = [0.001 * (i + k) for k in range(rows)]
    return {"t": [k * 10_000 for k in range(rows)],
            "pose": {"position": {"x": xs, "y": xs, "z": xs},
                     "orientation": {"x": xs, "y": xs, "z": xs, "w": [1.0] * rows}}}

def sdk():
    from robostream_sdk import ClientOptions, SyncRobotClient
    client = SyncRobotClient(url, "robot_001", options=ClientOptions(spool_dir=spool))
    client.start_session()
    start = time.time()
    begin = time.process_time(); wall = time.perf_counter()
    for i in range(envelopes):
        client.send("time_series", payload(i), timestamp=start + i * rows / 100)
    assert client.flush(timeout_s=300)
    cpu, wall = time.process_time() - begin, time.perf_counter() - wall
    acked = client.counters.acked
    client.close()
    return cpu, wall, acked

def bare():
    import asyncio
    import msgpack
    from websockets.asyncio.client import connect
    from robostream_sdk.packed import pack_time_series  # the same packed columns (stdlib struct)

    async def run():
        async with connect(url.replace("http", "ws", 1) + "/v1/stream", max_size=2**25) as ws:
            start = time.time()
            begin = time.process_time(); wall = time.perf_counter()
            batch, sent, acked = [], 0, 0
            async def acks():
                nonlocal acked
                async for message in ws:
                    answer = msgpack.unpackb(message)
                    acked += answer["count"] * rows
                    if answer["seq"] == envelopes - 1:
                        return
            reader = asyncio.ensure_future(acks())
            for i in range(envelopes):
                batch.append(msgpack.packb({"timestamp": start + i * rows / 100, "robot_id": "robot_001",
                                            "session_id": "s1", "data_type": "time_series", "seq": i,
                                            "payload": pack_time_series(payload(i))}, use_bin_type=True))
                if len(batch) == 100 or i == envelopes - 1:
                    await ws.send(b"".join([_array_header(len(batch)), *batch]))
                    batch = []
                    await asyncio.sleep(0)
            await reader
            return time.process_time() - begin, time.perf_counter() - wall, acked
    return asyncio.run(run())

def _array_header(n):
    import struct
    return bytes([0x90 | n]) if n < 16 else b"\\xdc" + struct.pack(">H", n)

def rss_mb(field):  # VmHWM is this program's own peak (ru_maxrss would count the parent's at fork)
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

interpreter_mb = rss_mb("VmRSS")
cpu, wall, acked = (sdk if kind == "sdk" else bare)()
print(json.dumps({"cpu_s": cpu, "wall_s": wall, "acked_samples": acked, "max_rss_mb": rss_mb("VmHWM"),
                  "interpreter_rss_mb": interpreter_mb}))
"""


def run_case(kind: str, url: str, envelopes: int, rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as spool:
        out = subprocess.run([sys.executable, "-c", ROBOT, kind, url, str(envelopes), str(rows), spool],
                             capture_output=True, text=True, timeout=900, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} case failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    samples = envelopes * rows
    assert result["acked_samples"] == samples, result
    result["cpu_ms_per_1000_samples"] = 1000 * result["cpu_s"] / samples * 1000
    result["samples"] = samples
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--quick", action="store_true", help="tiny inputs (the smoke test)")
    args = parser.parse_args(argv)
    shapes = [(200, 1), (20, 100)] if args.quick else [(20_000, 1), (1_000, 100)]
    peer = subprocess.Popen([sys.executable, "-c", PEER], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert peer.stdout is not None
        url = f"http://127.0.0.1:{int(peer.stdout.readline())}"
        results: dict[str, Any] = {}
        for envelopes, rows in shapes:
            for kind in ("bare", "sdk"):
                results[f"{kind}_{rows}_per_envelope"] = run_case(kind, url, envelopes, rows)
    finally:
        peer.terminate()
        peer.wait(10)
    rows_out = []
    for _, rows in shapes:
        bare, sdk = results[f"bare_{rows}_per_envelope"], results[f"sdk_{rows}_per_envelope"]
        for kind, r in (("bare websockets", bare), ("robostream-sdk", sdk)):
            rows_out.append([f"{kind}, {rows} sample(s)/envelope", f"{r['samples']:,}",
                             f"{r['cpu_ms_per_1000_samples']:.1f}", f"{r['max_rss_mb']:.0f}",
                             f"{r['cpu_ms_per_1000_samples'] / bare['cpu_ms_per_1000_samples']:.1f}x"])
    print_table("robot side: CPU per 1,000 samples sent and peak RSS",
                ["client", "samples", "CPU ms / 1k samples", "max RSS MB", "CPU vs bare"], rows_out)
    data = report("sdk", {"shapes": [{"envelopes": e, "rows": r} for e, r in shapes], "quick": args.quick},
                  results, versions("robostream-sdk", "websockets", "msgpack"))
    print(f"wrote {write_json(data, args.out)}")
    return data


if __name__ == "__main__":
    main()
