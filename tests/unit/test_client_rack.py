"""``kafka.client_rack`` reaches every consumer that reads robot data (processors, sinks, replay) as
``client.rack``, so that with rack-aware brokers each reads from a replica in its own zone (KIP-392);
unset, nothing is added and they read from leaders."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from robostream.config import ConnectorSettings, Settings
from robostream.processors.app import faust_app
from robostream.replay.reader import reader_config
from robostream.sinks.task import consumer_config

CONNECTOR = ConnectorSettings(name="mongo", kind="mongo", topics=["time_series"])


def settings(tmp_path: Path, rack: str | None) -> Settings:
    return Settings(stack={"state_dir": tmp_path}, processors={"web_port": None},
                    kafka={"client_rack": rack})


def processor_rack(settings: Settings) -> str | None:
    """The rack of the aiokafka consumer the processors' Faust worker builds."""

    async def build() -> str | None:
        app = faust_app(settings, 2)
        consumer = app.consumer._new_consumer_thread()._create_worker_consumer(app.transport)
        try:
            rack: str | None = consumer._client_rack
            return rack
        finally:
            await consumer.stop()

    return asyncio.run(build())


@pytest.mark.parametrize("rack", ["rack-b", "eu-west-1a"])
def test_a_configured_rack_reaches_the_processors_the_sinks_and_replay(tmp_path: Path, rack: str) -> None:
    s = settings(tmp_path, rack)
    assert consumer_config(s, CONNECTOR, 0)["client.rack"] == rack
    assert reader_config(s)["client.rack"] == rack
    assert processor_rack(s) == rack


def test_without_a_rack_no_consumer_names_one(tmp_path: Path) -> None:
    s = settings(tmp_path, None)
    assert "client.rack" not in consumer_config(s, CONNECTOR, 0)
    assert "client.rack" not in reader_config(s)
    assert processor_rack(s) is None


def test_the_rack_comes_from_the_environment_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from robostream.config import load_settings

    monkeypatch.setenv("ROBOSTREAM_KAFKA__CLIENT_RACK", "rack-c")
    assert load_settings().kafka.rack_config() == {"client.rack": "rack-c"}
