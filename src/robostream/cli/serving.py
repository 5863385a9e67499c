"""Running one of robostream's servers in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from robostream.gctuning import freeze_startup_heap

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def serve_until_signal(serve: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Set up logging and run ``serve(stop)``; SIGINT or SIGTERM sets ``stop`` (graceful shutdown)."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    freeze_startup_heap()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(stop)

    asyncio.run(main())
