"""Slow HTTP clients (slowloris): raw sockets that trickle a request and note when the server cuts them."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass
class Cut:
    """What one trickling client saw: the server's bytes and when the connection ended."""

    answer: bytes
    after_s: float  # from the first byte sent
    sent: int  # bytes the client got out

    @property
    def status(self) -> int | None:
        head = self.answer.split(b"\r\n", 1)[0].split()
        return int(head[1]) if len(head) >= 2 and head[1].isdigit() else None


async def trickle(host: str, port: int, start: bytes, drip: bytes, *, every_s: float,
                  give_up_s: float) -> Cut:
    """Send ``start``, then ``drip`` one byte at a time every ``every_s`` until the server closes
    (or ``give_up_s`` passes); read whatever the server answers meanwhile."""
    reader, writer = await asyncio.open_connection(host, port)
    began = time.monotonic()
    answer = bytearray()

    async def read_all() -> None:
        try:
            while chunk := await reader.read(65536):
                answer.extend(chunk)
        except ConnectionError:
            pass

    reading = asyncio.create_task(read_all())
    sent = 0
    try:
        writer.write(start)
        sent = len(start)
        for i in range(len(drip)):
            await asyncio.wait([reading], timeout=every_s)
            if reading.done() or time.monotonic() - began > give_up_s:
                break
            writer.write(drip[i:i + 1])
            await writer.drain()
            sent += 1
        await asyncio.wait_for(reading, max(0.1, give_up_s - (time.monotonic() - began)))
    except (ConnectionError, TimeoutError):
        pass
    finally:
        after = time.monotonic() - began
        reading.cancel()
        writer.close()
    return Cut(bytes(answer), after, sent)


async def get(host: str, port: int, path: str) -> tuple[int, float]:
    """A normal client: one GET, its status and how long it took."""
    began = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    return int(answer.split()[1]), time.monotonic() - began


async def slowloris(host: str, port: int, path: str, *, clients: int, every_s: float, give_up_s: float,
                    probe_path: str) -> tuple[list[Cut], list[tuple[int, float]]]:
    """``clients`` connections trickling their headers while a normal client GETs ``probe_path``
    every half second; what each trickler saw and each probe's (status, seconds)."""
    start = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n".encode()
    drip = b"X-Slow: " + b"a" * 4000
    tricklers = [asyncio.create_task(trickle(host, port, start, drip, every_s=every_s, give_up_s=give_up_s))
                 for _ in range(clients)]
    probes = []
    while not all(t.done() for t in tricklers):
        await asyncio.sleep(0.5)
        probes.append(await get(host, port, probe_path))
    return [t.result() for t in tricklers], probes
