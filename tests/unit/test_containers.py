"""ROBOSTREAM_TEST_STACK: the value is checked, and the containers path skips, saying why, where
no Docker engine answers."""

from __future__ import annotations

import pytest

from tests import containers


@pytest.mark.parametrize(("value", "mode"), [(None, "local"), ("local", "local"), ("", "local"),
                                             ("containers", "containers"), (" Containers ", "containers")])
def test_mode_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, mode: str,
) -> None:
    if value is None:
        monkeypatch.delenv(containers.MODE_VAR, raising=False)
    else:
        monkeypatch.setenv(containers.MODE_VAR, value)
    assert containers.stack_mode() == mode


@pytest.mark.parametrize("value", ["docker", "container", "embedded", "1"])
def test_any_other_mode_is_an_error_naming_the_choices(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(containers.MODE_VAR, value)
    with pytest.raises(pytest.UsageError) as caught:
        containers.stack_mode()
    message = str(caught.value)
    assert f"ROBOSTREAM_TEST_STACK={value!r}" in message
    assert "'local'" in message and "'containers'" in message


def test_containers_path_skips_with_a_clear_reason_when_no_docker_engine_answers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object,
) -> None:
    nowhere = f"unix://{tmp_path}/docker.sock"  # no engine here, whether or not the machine has one
    monkeypatch.setenv("DOCKER_HOST", nowhere)
    monkeypatch.setenv(containers.MODE_VAR, "containers")
    with pytest.raises(pytest.skip.Exception) as skipped:
        containers.start_containers()
    reason = str(skipped.value)
    assert "ROBOSTREAM_TEST_STACK=containers needs a Docker engine" in reason
    assert nowhere in reason
    assert "ROBOSTREAM_TEST_STACK=local" in reason


def test_containers_use_the_images_of_docker_compose() -> None:
    images = containers.compose_images()
    assert images["kafka"].startswith("apache/kafka:4.")
    assert images["mongo"].startswith("mongo:")
    assert images["minio"].startswith("minio/minio:")
    assert images["redis"].startswith("redis:")
