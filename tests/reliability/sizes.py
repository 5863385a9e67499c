"""How big the reliability suite runs: CI size in ``make test``, larger with ROBOSTREAM_RELIABILITY_FULL=1.

A *message* is what the robot SDK counts (docs/producers.md): one row of a ``time_series``
record. Each envelope (one ``seq``) carries ``ROWS_PER_ENVELOPE`` rows and the SDK sends
envelopes in batches of 100, so 100k messages are 10k envelopes (seqs) in 100 frames per robot.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

FULL = os.environ.get("ROBOSTREAM_RELIABILITY_FULL") == "1"
ROWS_PER_ENVELOPE = 10


@dataclass(frozen=True)
class Sizes:
    """Every size knob of the suite."""

    crash_messages: int  # streamed by 3 robots while gateway, sinks and processors are killed
    outage_messages: int  # streamed while MongoDB, S3 and Redis are each stopped
    outage_s: float  # how long each store stays down
    broker_messages: int  # streamed while the Kafka broker restarts
    broker_stream_s: float  # how long the robots stream around that restart
    cluster_messages: int  # streamed to the 3-broker cluster while a broker is killed
    cluster_stream_s: float  # how long the robots stream to the cluster at their fixed rate
    cluster_down_s: float  # how long a killed broker of the cluster stays down (at least until failover)
    fuzz_cases: int  # in-process decode + validate cases (hypothesis)
    live_fuzz_cases: int  # generated bad envelopes sent through the live gateway
    big_frame_bytes: int  # the oversized frame

    @property
    def label(self) -> str:
        return "full" if FULL else "CI, as in make test"


# CI: each fault happens once, long enough for the sinks' retries to reach their longest step
# (2 s) and for a new partition leader (the brokers' 9 s session timeout); the full size repeats
# the same faults under a longer stream and outage.
CI = Sizes(crash_messages=100_000, outage_messages=10_000, outage_s=5.0,
           broker_messages=15_000, broker_stream_s=15.0,
           cluster_messages=6_000, cluster_stream_s=8.0, cluster_down_s=4.0,
           fuzz_cases=100_000, live_fuzz_cases=2_000, big_frame_bytes=100 * 1024 * 1024)
BIG = Sizes(crash_messages=300_000, outage_messages=90_000, outage_s=20.0,
            broker_messages=90_000, broker_stream_s=25.0,
            cluster_messages=90_000, cluster_stream_s=60.0, cluster_down_s=20.0,
            fuzz_cases=300_000, live_fuzz_cases=10_000, big_frame_bytes=100 * 1024 * 1024)
SIZES = BIG if FULL else CI
