"""The SDK runs on a robot: it imports nothing of the platform, and the simulator never imports
the gateway."""

from __future__ import annotations

import subprocess
import sys


def loaded_after(code: str, package: str) -> list[str]:
    """The modules of ``package`` (itself or below) loaded by ``code`` in a fresh interpreter."""
    probe = (f"import sys; {code}; print(sorted(m for m in sys.modules "
             f"if m == {package!r} or m.startswith({package + '.'!r})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return eval(out.stdout)  # a printed list of module names


def test_the_sdk_and_the_simulator_do_not_import_the_gateway() -> None:
    code = "import robostream_sdk, robostream.simulator, robostream.cli.simulate_cmd"
    assert loaded_after(code, "robostream.gateway") == []


def test_the_sdk_imports_nothing_of_the_platform() -> None:
    code = "import robostream_sdk, robostream_sdk.transport.https"
    assert loaded_after(code, "robostream") == []
