"""The viewer's "Call the robot" form in headless Chromium: with the write token typed in, it
calls the simulated robot and shows its answer; with a read token it shows the refusal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from robostream.simulator import SimulatedRobot
from tests.integration.api.helpers import RunningApi
from tests.integration.api.test_viewer import ARTIFACTS, CHROMIUM, viewer_page

from .conftest import READ_TOKEN, WRITE_TOKEN

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")


async def submit(page: Any, method: str, params: str, token: str, calls: int) -> str:
    """Fill the form, press Call, and return what it shows once the answer came."""
    for selector, value in (("#call-method", method), ("#call-params", params), ("#write-token", token)):
        await page.fill(selector, value)
    await page.click("#call-button")
    await page.wait_for_function(f"window.robostreamViewer.calls >= {calls}")
    text: str = await page.inner_text("#call-result")
    return text


async def test_the_viewer_calls_the_robot_with_the_write_token(api: RunningApi,
                                                               robot: SimulatedRobot) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    async with viewer_page(f"{api.url}/?token={READ_TOKEN}&robot=robot_001", errors) as page:
        await page.wait_for_function("document.getElementById('robot').value === 'robot_001'")
        answer = await submit(page, "camera.set_exposure", '{"exposure_ms": 6}', WRITE_TOKEN, 1)
        await page.screenshot(path=str(ARTIFACTS / "api-viewer-rpc.png"), full_page=True)
        refused = await submit(page, "ping", "{}", READ_TOKEN, 2)
        bad_params = await submit(page, "ping", "{oops", WRITE_TOKEN, 2)
    assert not errors
    assert answer.startswith("camera.set_exposure →") and '"exposure_ms": 6' in answer
    assert robot.rpc.exposure_ms["front"] == 6.0
    assert refused.startswith("403 forbidden: this token may not call robots")
    assert bad_params.startswith("params are not JSON")
