"""The gateway's Kafka producer runs with the delivery guarantees design.md promises.

On one broker ``acks=1`` and ``acks=all`` behave the same, so nothing else would notice a
regression: these tests read the configuration the gateway actually hands to librdkafka.
"""

from __future__ import annotations

from typing import Any

import pytest

from robostream.config import GatewaySettings, KafkaSettings, Settings, StackSettings
from robostream.gateway.app import Gateway


def effective(settings: Settings) -> Any:
    app = Gateway(settings)
    try:
        return app.producer.config
    finally:
        app.producer.close(timeout=0)


@pytest.mark.parametrize("brokers", [1, 3])
def test_the_gateway_producer_waits_for_every_in_sync_replica_and_is_idempotent(brokers: int) -> None:
    settings = Settings(kafka=KafkaSettings(bootstrap="127.0.0.1:1"),
                        stack=StackSettings(kafka_brokers=brokers, kafka_controller_port=2))
    config = effective(settings)
    assert str(config["acks"]) in ("all", "-1"), "an ack to the robot must mean: on every in-sync replica"
    assert config["enable.idempotence"] is True, "retries must not duplicate or reorder a session"
    assert config["bootstrap.servers"].count(",") == brokers - 1
    # librdkafka refuses idempotence with more than 5 requests in flight; none of ours may set more
    assert int(config.get("max.in.flight.requests.per.connection", 5)) <= 5
    assert "retries" not in config or int(config["retries"]) > 0


def test_a_record_waits_for_kafka_as_long_as_the_settings_say() -> None:
    settings = Settings(kafka=KafkaSettings(bootstrap="127.0.0.1:1"),
                        gateway=GatewaySettings(delivery_timeout_s=7.5))
    assert effective(settings)["message.timeout.ms"] == 7500
