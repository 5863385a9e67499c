"""The Faust internals the processors reach into: all present on the installed versions, and a
missing one stops the app from being built with a message naming it and the faust-streaming version."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
from faust.transport import consumer as faust_consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from robostream.config import Settings
from robostream.processors.app import faust_app
from robostream.processors.faust_adapter import (
    TESTED_FAUST,
    FaustInternalsError,
    Internal,
    RewindingApp,
    check_faust_internals,
    internals,
)
from robostream.processors.worker import ProcessorStartError


def _settings(tmp_path: Path) -> Settings:
    return Settings(stack={"state_dir": tmp_path}, processors={"web_port": None})


def test_every_internal_the_processors_use_exists_on_the_installed_versions(tmp_path: Path) -> None:
    missing = [str(item) for item in internals() if not item.present()]
    assert missing == []
    check_faust_internals()
    assert isinstance(faust_app(_settings(tmp_path), 2), RewindingApp)


def test_a_missing_private_method_stops_the_app_naming_it_and_the_faust_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(AIOKafkaConsumerThread, "_ensure_consumer")
    with pytest.raises(FaustInternalsError) as err:
        faust_app(_settings(tmp_path), 2)
    text = str(err.value)
    assert "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._ensure_consumer" in text
    assert f"faust-streaming {version('faust-streaming')} " in text
    assert f"tested with faust-streaming {TESTED_FAUST}" in text
    assert isinstance(err.value, ProcessorStartError)  # the CLI prints it as a start error


def test_an_attribute_its_init_no_longer_sets_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeConsumer:
        def __init__(self) -> None:
            self.committed_offsets: dict[str, int] = {}

    with pytest.raises(FaustInternalsError, match=r"FakeConsumer\._committed_offset\b"):
        check_faust_internals([Internal(FakeConsumer, "_committed_offset", in_init=True)])
    check_faust_internals([Internal(FakeConsumer, "committed_offsets", in_init=True)])

    monkeypatch.setattr(faust_consumer.Consumer, "__init__", FakeConsumer.__init__)
    with pytest.raises(FaustInternalsError, match=r"faust\.transport\.consumer\.Consumer\._committed_offset"):
        check_faust_internals()
