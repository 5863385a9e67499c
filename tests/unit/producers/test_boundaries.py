"""The SDK and the simulator run on a robot: they never import the gateway."""

from __future__ import annotations

import subprocess
import sys


def test_the_sdk_and_the_simulator_do_not_import_the_gateway() -> None:
    code = ("import sys, robostream.producers, robostream.simulator, robostream.cli.simulate_cmd; "
            "print(sorted(m for m in sys.modules if m.startswith('robostream.gateway')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
