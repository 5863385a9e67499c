"""The viewer page in headless Chromium (Debian's ``chromium``, driven by Playwright): it loads,
its plot receives the live points a simulated robot streams, the newest frames show as
thumbnails, the scrubber plays history. A screenshot is kept in tests/artifacts/."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.integration.api.helpers import Landing, RunningApi, SimulatedRobot, jpeg, now_us

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")


async def viewer_state(page: Any, name: str) -> Any:
    return await page.evaluate(f"window.robostreamViewer.{name}")


async def test_the_viewer_plots_live_points_and_plays_history(api: RunningApi, landing: Landing,
                                                              ids: dict[str, str]) -> None:
    async_playwright = pytest.importorskip("playwright.async_api").async_playwright

    robot_id, session_id = ids["robot"], ids["session"]
    start = now_us() - 30_000_000
    landing.session_start(robot_id, session_id, start)
    robot = SimulatedRobot(robot_id, session_id, start)
    landing.telemetry(robot.records(200))  # 20 s of history (MongoDB) and the ring (Redis)
    for seq in range(4):
        landing.image(robot_id, session_id, start + seq * 5_000_000, seq=seq, kind="thumbnail",
                      content=jpeg(120, 68, 60 * seq))
    ARTIFACTS.mkdir(exist_ok=True)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{api.url}/?robot={robot_id}&session={session_id}")
        await page.wait_for_function("document.getElementById('status').textContent === 'live'")
        await page.wait_for_function("window.robostreamViewer.livePoints >= 1000")  # the snapshot

        async def robot_streams() -> None:
            for _ in range(20):  # 2 s of 100 Hz telemetry, as it happens
                await asyncio.to_thread(landing.telemetry, [robot.next_record()], ("redis",))
                await asyncio.sleep(0.1)

        await robot_streams()
        await page.wait_for_function("window.robostreamViewer.livePoints >= 1200")
        await page.wait_for_function("document.querySelectorAll('#thumbnails img').length >= 4")
        await page.wait_for_function(
            "[...document.querySelectorAll('#thumbnails img')].every(i => i.complete && i.naturalWidth > 0)")
        await page.screenshot(path=str(ARTIFACTS / "api-viewer-live.png"), full_page=True)
        legend = await page.inner_text("#pose-legend")

        await page.fill("#scrubber", "0")  # back to the session start, then play
        await page.click("#play-button")
        await page.wait_for_function("window.robostreamViewer.historyRows >= 500", timeout=20_000)
        await page.screenshot(path=str(ARTIFACTS / "api-viewer-history.png"), full_page=True)
        mode = await viewer_state(page, "mode")
        await browser.close()

    assert not errors
    assert "position.x" in legend and "position.z" in legend
    assert mode == "history"
    assert (ARTIFACTS / "api-viewer-live.png").stat().st_size > 10_000
