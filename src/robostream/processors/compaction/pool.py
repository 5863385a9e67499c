"""The frame-encoding process pool, replaced when one of its processes dies.

A process killed by the OS (OOM killer, ``kill -9``, a crash in a native encoder) breaks a
``ProcessPoolExecutor`` for good: every job in it then fails with ``BrokenProcessPool``. The
jobs in flight cannot tell the culprit from the bystanders, so :class:`EncoderPool` starts a new
pool for the jobs to come and retries each failed job once **alone**, in a fresh single-use
process: a bystander succeeds there, and a job that kills that process too is the culprit and
fails with :class:`EncoderCrashError` (its frames become dead letters).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from robostream.errors import RobostreamError
from robostream.processors.compaction.jobs import pool_initializer

log = logging.getLogger("robostream.processors")

A = TypeVar("A")
R = TypeVar("R")

#: ``new_pool(workers)``: a new process pool of ``workers`` processes.
PoolFactory = Callable[[int], Executor]


class EncoderCrashError(RobostreamError, RuntimeError):
    """A job killed its encoding process twice: in the shared pool, then alone in a fresh one."""


def new_process_pool(workers: int) -> ProcessPoolExecutor:
    """The production pool: spawned processes at low priority that exit with their worker."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=pool_initializer, initargs=(os.getpid(),))


class EncoderPool:
    """Runs jobs in a process pool; a broken pool is replaced and its jobs retried once, alone.

    Args:
        workers: processes in the shared pool.
        new_pool: builds a pool (the shared one, and the single-use ones for retries).
        on_restart: called each time the shared pool is replaced.
    """

    def __init__(self, workers: int, new_pool: PoolFactory = new_process_pool,
                 on_restart: Callable[[], None] = lambda: None) -> None:
        self.workers = workers
        self.new_pool = new_pool
        self.on_restart = on_restart
        self.restarts = 0
        self.pool = new_pool(workers)

    async def run(self, fn: Callable[[A], R], arg: A) -> R:
        """``fn(arg)`` in the pool; raises :class:`EncoderCrashError` if it kills its process twice."""
        pool = self.pool
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, arg)
        except BrokenProcessPool as exc:
            self._replace(pool, exc)
        return await self._run_alone(fn, arg)

    def _replace(self, broken: Executor, exc: BrokenProcessPool) -> None:
        """Start a new shared pool, once per broken one (its other jobs fail the same way)."""
        if broken is not self.pool:
            return
        self.pool = self.new_pool(self.workers)
        broken.shutdown(wait=False, cancel_futures=True)
        self.restarts += 1
        self.on_restart()
        log.warning("frame-encoding pool broke (%s): started a new pool of %d process(es); "
                    "retrying its jobs one by one in fresh processes", exc, self.workers)

    async def _run_alone(self, fn: Callable[[A], R], arg: A) -> R:
        single = self.new_pool(1)
        try:
            return await asyncio.get_running_loop().run_in_executor(single, fn, arg)
        except BrokenProcessPool as exc:
            raise EncoderCrashError(
                "the frame-encoding process died while encoding this job, twice: in the shared pool "
                f"and again alone in a fresh process (crash or out of memory in the encoder: {exc})"
            ) from None
        finally:
            single.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        """Stop the shared pool, cancelling queued jobs (after the worker stopped)."""
        self.pool.shutdown(wait=True, cancel_futures=True)
