"""The robot SDK is its own small distribution: two dependencies, Python 3.9+, typed, its own
error root, and its light contract check agrees with the platform's Avro schemas."""

from __future__ import annotations

import inspect
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import robostream_sdk
from robostream.schemas import load_schema
from robostream.schemas.examples import example_payload
from robostream_sdk import DataType, ErrorCode, SdkError, ValidationError, build_envelope
from robostream_sdk.contract import ENUM_FIELDS, REQUIRED_FIELDS
from tests.sdk_wheel import build_sdk_wheel

#: What a robot installs besides the SDK itself. Adding one is a decision, not an accident.
ALLOWED = {"msgpack", "websockets"}


@pytest.fixture(scope="module")
def metadata(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, list[str]], list[str]]:
    wheel = build_sdk_wheel(tmp_path_factory.mktemp("wheel"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        text = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    message = Parser().parsestr(text)
    return {key: message.get_all(key) or [] for key in ("Requires-Dist", "Requires-Python")}, names


def installed_dependencies(requires_dist: list[str]) -> set[str]:
    """The requirements ``pip install robostream-sdk`` installs (no extra asked for)."""
    out = set()
    for line in requires_dist:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            out.add(requirement.name.lower())
    return out


def test_the_wheel_installs_msgpack_and_websockets_and_nothing_else(metadata: tuple) -> None:
    fields, _ = metadata
    assert installed_dependencies(fields["Requires-Dist"]) == ALLOWED
    assert fields["Requires-Python"] == [">=3.9"]


def test_the_dependency_check_sees_a_new_dependency() -> None:
    grown = ["msgpack<2,>=1.0", "websockets<18,>=13", "pydantic>=2", "numpy>=1.21; extra == 'numpy'"]
    assert installed_dependencies(grown) == ALLOWED | {"pydantic"}


def test_the_wheel_ships_its_types_and_no_platform_code(metadata: tuple) -> None:
    _, names = metadata
    assert "robostream_sdk/py.typed" in names
    assert not [n for n in names if n.startswith("robostream/")]


def test_every_public_sdk_error_is_an_sdk_error() -> None:
    import importlib
    import pkgutil

    found = {}
    for info in pkgutil.walk_packages(robostream_sdk.__path__, "robostream_sdk."):
        module = importlib.import_module(info.name)
        found.update({f"{info.name}.{name}": value for name, value in vars(module).items()
                      if inspect.isclass(value) and issubclass(value, BaseException)
                      and value.__module__ == info.name and not name.startswith("_")})
    assert len(found) >= 6
    assert [name for name, cls in found.items() if not issubclass(cls, SdkError)] == []


@pytest.mark.parametrize("data_type", list(DataType))
def test_the_sdk_knows_each_schemas_required_fields_and_enums(data_type: DataType) -> None:
    (payload,) = [f for f in load_schema(str(data_type))["fields"] if f["name"] == "payload"]
    fields = payload["type"]["fields"]
    assert REQUIRED_FIELDS[data_type] == tuple(f["name"] for f in fields if "default" not in f)
    enums = {f["name"]: tuple(f["type"]["symbols"]) for f in fields
             if isinstance(f["type"], dict) and f["type"].get("type") == "enum"}
    assert ENUM_FIELDS.get(data_type, {}) == enums
    build_envelope(data_type, example_payload(data_type), robot_id="r1", session_id="s1", seq=0)


@pytest.mark.parametrize(("change", "code", "path"), [
    ({"data_type": "telemetry"}, ErrorCode.UNKNOWN_DATA_TYPE, "data_type"),
    ({"robot_id": "../etc"}, ErrorCode.INVALID_ID, "robot_id"),
    ({"seq": -1}, ErrorCode.INVALID_FIELD, "seq"),
    ({"timestamp": 1_718_000_000_000.0}, ErrorCode.INVALID_FIELD, "timestamp"),  # milliseconds
    ({"timestamp": float("nan")}, ErrorCode.NON_FINITE, "timestamp"),
    ({"payload": {"message": "no level"}}, ErrorCode.MISSING_FIELD, "payload.level"),
    ({"payload": {"level": "loud", "message": "x"}}, ErrorCode.INVALID_FIELD, "payload.level"),
])
def test_what_a_robot_gets_wrong_fails_on_the_robot_with_the_gateways_code(
    change: dict, code: ErrorCode, path: str
) -> None:
    args = {"data_type": "log", "payload": {"level": "info", "message": "x"}, "robot_id": "r1",
            "session_id": "s1", "seq": 0, "timestamp": 1_718_000_000.0, **change}
    with pytest.raises(ValidationError) as caught:
        build_envelope(args.pop("data_type"), args.pop("payload"), **args)
    assert caught.value.code == code and caught.value.path == path
    assert f"[{code}]" in str(caught.value)


def test_the_gateways_validation_error_is_the_sdks() -> None:
    from robostream.errors import RobostreamError
    from robostream.schemas import ValidationError as PlatformValidationError

    assert issubclass(PlatformValidationError, ValidationError)
    assert issubclass(PlatformValidationError, RobostreamError)


def test_the_sdk_source_is_python_3_9_syntax() -> None:
    import ast

    package = Path(robostream_sdk.__file__).parent
    for path in package.rglob("*.py"):
        ast.parse(path.read_text(), str(path), feature_version=(3, 9))
