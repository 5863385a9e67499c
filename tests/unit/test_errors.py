"""One error root: every public exception class of every part is a ``RobostreamError``, so a
caller can catch "any robostream error", and a new one cannot escape the hierarchy."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import robostream
from robostream import RobostreamError
from robostream.replay.bounds import BoundError
from robostream.sinks.bucket_store import WriteConflictError
from robostream.sinks.connector import ConnectorConfigError

#: Outside the root: none (the robot SDK, its own package robostream_sdk, has its own root SdkError).
NOT_YET: set[str] = set()


def public_exceptions() -> dict[str, type[BaseException]]:
    """``module.Name`` -> class, of every exception class defined in a robostream module."""
    found = {}
    for module_info in pkgutil.walk_packages(robostream.__path__, "robostream."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, BaseException)
                    and value.__module__ == module.__name__ and not name.startswith("_")):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_public_exception_is_a_robostream_error() -> None:
    found = public_exceptions()
    assert len(found) >= 20  # the walk reached every part
    escaped = {name for name, cls in found.items() if not issubclass(cls, RobostreamError)}
    assert escaped == NOT_YET  # a new class under the root: remove it from NOT_YET


@pytest.mark.parametrize(("error", "also"), [
    (BoundError, ValueError), (ConnectorConfigError, ValueError), (WriteConflictError, RuntimeError)])
def test_errors_stay_what_callers_catch(error: type[Exception], also: type[Exception]) -> None:
    with pytest.raises(also):
        raise error("kept")
    assert issubclass(error, RobostreamError)

