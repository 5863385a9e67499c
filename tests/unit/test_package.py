"""The distribution: typed (``py.typed`` ships in the wheel) and versioned in one place
(pyproject.toml's ``[project] version``, read back through the installed metadata)."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from typer.testing import CliRunner

import robostream
from robostream.api import openapi_document
from robostream.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_package_ships_its_types() -> None:
    assert resources.files("robostream").joinpath("py.typed").is_file()
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["packages"] == ["src/robostream"]  # the whole package directory, py.typed too
    assert not {"exclude", "only-include", "artifacts"} & set(wheel)


def test_the_version_has_one_source() -> None:
    version = PYPROJECT["project"]["version"]
    assert robostream.__version__ == version
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == version
    assert openapi_document()["info"]["version"] == version
    hard_coded = [str(path.relative_to(ROOT)) for path in (ROOT / "src" / "robostream").rglob("*.py")
                  if f'"{version}"' in path.read_text() or f"'{version}'" in path.read_text()]
    assert hard_coded == []
