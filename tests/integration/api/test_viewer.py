"""The viewer page in headless Chromium (Debian's ``chromium``, driven by Playwright): it loads,
its plot receives the live points a simulated robot streams, the newest frames show as
thumbnails, the scrubber plays history; the history view shows a whole session from the
level-of-detail pyramid and zooms down to raw points. Screenshots are kept in tests/artifacts/."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from robostream.processors.columns import TelemetryColumns
from robostream.sinks.points import Telemetry, points
from tests.integration.api.helpers import Landing, RunningApi, SimulatedRobot, jpeg, now_us

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")


@contextlib.asynccontextmanager
async def viewer_page(url: str, errors: list[str]) -> AsyncIterator[Any]:
    """The viewer at ``url`` in headless Chromium; page errors are appended to ``errors``."""
    async_playwright = pytest.importorskip("playwright.async_api").async_playwright
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(url)
            yield page
        finally:
            await browser.close()


async def viewer_state(page: Any, name: str) -> Any:
    return await page.evaluate(f"window.robostreamViewer.{name}")


PLOTTED = ("pose.position.", "joints.angle.")  # the channels the viewer's two plots show
HISTORY_STATE = """(s => ({source: s.historySource, level: s.historyLevel, bucketUs: s.historyBucketUs,
    range: s.historyRange, buckets: s.historyBuckets, extent: s.historyExtent, fetches: s.historyFetches,
    rows: s.historyData.filter(r => r.ts_us < s.historyRange[1]
                                    && (r.end_us ?? r.ts_us + 1) > s.historyRange[0]),
    info: document.getElementById('history-info').textContent}))(window.robostreamViewer)"""


def plotted_points(records: list[TelemetryColumns]) -> list[dict[str, Any]]:
    """The points of the plotted channels, as the sinks store them, in time order."""
    out = []
    for columns in records:
        for bucket in Telemetry.from_columns(columns).buckets:
            for point in points(bucket):
                values = {k: v for k, v in point["values"].items() if k.startswith(PLOTTED)}
                if values:
                    out.append({**point, "values": values})
    return sorted(out, key=lambda p: (p["ts_us"], p["seq"], p["i"]))


def extent(rows: list[dict[str, Any]], prefix: str) -> list[float]:
    values = [v for r in rows for k, v in r["values"].items() if k.startswith(prefix)]
    return [min(values), max(values)]


async def history_answer(page: Any, after: int) -> dict[str, Any]:
    """The history view's state once an answer newer than ``after`` fetches is drawn and none is due."""
    await page.wait_for_function(
        f"(s => !s.historyLoading && s.historyFetches > {after})(window.robostreamViewer)", timeout=20_000)
    state: dict[str, Any] = await page.evaluate(HISTORY_STATE)
    return state


async def test_the_viewer_plots_live_points_and_plays_history(api: RunningApi, landing: Landing,
                                                              ids: dict[str, str]) -> None:
    robot_id, session_id = ids["robot"], ids["session"]
    start = now_us() - 30_000_000
    landing.session_start(robot_id, session_id, start)
    robot = SimulatedRobot(robot_id, session_id, start)
    landing.telemetry(robot.records(200))  # 20 s of history (MongoDB) and the ring (Redis)
    for seq in range(4):
        landing.image(robot_id, session_id, start + seq * 5_000_000, seq=seq, kind="thumbnail",
                      content=jpeg(120, 68, 60 * seq))
    ARTIFACTS.mkdir(exist_ok=True)

    errors: list[str] = []
    async with viewer_page(f"{api.url}/?robot={robot_id}&session={session_id}", errors) as page:
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

    assert not errors
    assert "position.x" in legend and "position.z" in legend
    assert mode == "history"
    assert (ARTIFACTS / "api-viewer-live.png").stat().st_size > 10_000


async def test_the_history_view_zooms_from_the_pyramid_down_to_raw_points(api: RunningApi, landing: Landing,
                                                                        ids: dict[str, str]) -> None:
    robot_id, session_id = ids["robot"], ids["session"]
    start = (now_us() // 1_000_000 - 15 * 60) * 1_000_000  # whole seconds: exact in the session events
    end = start + 600_000_000
    landing.session_start(robot_id, session_id, start)
    robot = SimulatedRobot(robot_id, session_id, start, rate_hz=100.0, samples=100)
    records = robot.records(600)  # 10 minutes at 100 Hz: 60,000 points
    landing.telemetry(records)
    landing.session_end(robot_id, session_id, end)
    stored = plotted_points(records)
    assert len(stored) == 60_000
    second_from = start + 300_005_000  # one second, its edges between samples (10 ms apart)
    second = [p for p in stored if second_from <= p["ts_us"] < second_from + 1_000_000]
    assert len(second) == 100
    ARTIFACTS.mkdir(exist_ok=True)

    errors: list[str] = []
    async with viewer_page(f"{api.url}/?robot={robot_id}&session={session_id}", errors) as page:
        await page.wait_for_function(  # the session is picked and the live view started
            "window.robostreamViewer.sessionInfo !== null && window.robostreamViewer.mode === 'live'")

        await page.click("#history-button")
        whole = await history_answer(page, 0)
        await page.screenshot(path=str(ARTIFACTS / "api-viewer-history-session.png"), full_page=True)
        plot = await page.eval_on_selector(
            "#pose-plot", "c => ({width: c.width, box: c.getBoundingClientRect().toJSON()})")

        # the mouse wheel zooms in around the cursor (three quarters into the plot), still from the pyramid
        box, scale = plot["box"], plot["box"]["width"] / plot["width"]  # CSS px per canvas px
        plot_left, plot_width = box["x"] + 32 * scale, (plot["width"] - 36) * scale  # within the frame
        await page.mouse.move(plot_left + 0.75 * plot_width, box["y"] + box["height"] / 2)
        await page.mouse.wheel(0, -600)
        wheeled = await history_answer(page, whole["fetches"])

        # dragging pans: 300 px to the left shows later times
        await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        await page.mouse.down()
        await page.mouse.move(box["x"] + box["width"] / 2 - 300, box["y"] + box["height"] / 2, steps=6)
        await page.mouse.up()
        panned = await history_answer(page, wheeled["fetches"])

        await page.evaluate(f"window.robostreamViewer.zoomTo({second_from}, {second_from + 1_000_000})")
        raw = await history_answer(page, panned["fetches"])
        await page.screenshot(path=str(ARTIFACTS / "api-viewer-history-raw.png"), full_page=True)
        status = await page.inner_text("#status")

    assert not errors
    # the whole session, one-second min/max buckets of the pyramid, every one drawn
    assert whole["source"] == "lod" and whole["level"] == "1s" and whole["bucketUs"] == 1_000_000
    assert whole["range"] == [start, end]
    assert whole["buckets"] == len(whole["rows"]) == 600 <= plot["width"]  # at most a bucket per pixel
    assert [r["ts_us"] for r in whole["rows"]] == [start + k * 1_000_000 for k in range(600)]
    assert sum(r["count"]["pose.position.x"] for r in whole["rows"]) == 60_000
    # the bands hold every sample: each plot's y axis spans the extremes of the raw points
    assert whole["extent"]["pose-plot"] == pytest.approx(extent(stored, "pose.position."))
    assert whole["extent"]["joints-plot"] == pytest.approx(extent(stored, "joints.angle."))
    assert "600 buckets of 1 s (pyramid level 1s)" in whole["info"] and "(10 min)" in whole["info"]
    assert "loading" not in whole["info"]

    zoomed_span = wheeled["range"][1] - wheeled["range"][0]
    assert wheeled["source"] == "lod" and zoomed_span < 0.6 * 600_000_000
    cursor_us = start + 0.75 * 600_000_000  # the time under the cursor stayed under it
    assert (cursor_us - wheeled["range"][0]) / zoomed_span == pytest.approx(0.75, abs=0.01)
    assert wheeled["buckets"] == pytest.approx(zoomed_span / 1_000_000, abs=1)

    assert panned["range"][1] - panned["range"][0] == zoomed_span
    assert panned["range"][0] - wheeled["range"][0] == pytest.approx(300 / plot_width * zoomed_span, rel=0.02)
    assert panned["source"] == "lod"

    # one second: fewer 1 s bins than pixels, so the points themselves, every one drawn
    assert raw["source"] == "raw" and raw["level"] is None
    assert raw["range"] == [second_from, second_from + 1_000_000]
    assert raw["buckets"] == 100
    assert [(r["ts_us"], r["values"]) for r in raw["rows"]] == [(p["ts_us"], p["values"]) for p in second]
    assert raw["extent"]["pose-plot"] == pytest.approx(extent(second, "pose.position."))
    assert "100 raw points" in raw["info"] and "(1 s)" in raw["info"] and "loading" not in raw["info"]
    assert status == "history · raw points"
    for name in ("api-viewer-history-session.png", "api-viewer-history-raw.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000
