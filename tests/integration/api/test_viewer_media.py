"""The viewer's hot loading in headless Chromium (Debian's ``chromium``, Playwright): frames load
progressively (thumbnail, preview, the original on a click) in the frame view, which also follows
the live camera; the session's frame list keeps only the rows on screen in the page; H.264
segments play as video; point clouds stored as Draco and PLY are drawn in 3D with WebGL; and a
session viewed once replays offline from the Service Worker's IndexedDB copy, its played H.264
segments included.

One browser and one seeded session serve every test of the module (they run in file order: the
offline test replays what the earlier ones viewed). Screenshots are kept in tests/artifacts/."""

from __future__ import annotations

import hashlib
import io
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from robostream.processors import FrameBatch, FrameKind, FrameMeta, FrameTier, StoredObject
from robostream.processors.compaction import h264, pointcloud
from robostream.schemas import build_envelope
from robostream.schemas.examples import example_payload
from robostream.times import HOUR_US
from tests.conftest import TEST_STACK_ENV
from tests.integration.api.helpers import Landing, RunningApi, SimulatedRobot, jpeg, now_us
from tests.integration.api.test_viewer import ARTIFACTS, CHROMIUM, FLAGS

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")

LISTED = 240          # small frames of camera "front", 0.1 s apart: the long list
CLOUD_POINTS = 3000   # points of the Draco cloud
PLY_POINTS = 500      # points of the PLY cloud


def png(width: int, height: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).save(out, format="PNG")
    return out.getvalue()


def stored(key: str, content_type: str, data: bytes) -> StoredObject:
    return StoredObject(key, content_type, len(data), hashlib.sha256(data).hexdigest(), data)


def tier(name: str, key: str, fmt: str, width: int, height: int, data: bytes) -> FrameTier:
    return FrameTier(name, key, fmt, "test", width, height, len(data))


def meta(camera: str, kind: FrameKind, ts: int, tiers: list[FrameTier], thumbnail: bytes | None) -> FrameMeta:
    return FrameMeta(f"{camera}-{kind.value}-{ts}", 1, ts, ts - ts % HOUR_US, "jpeg", 1000, tiers[0].width,
                     tiers[0].height, tiers[0].size_bytes, tiers, thumbnail)


def rgb_batch(robot: str, session: str, camera: str, ts: int) -> FrameBatch:
    """The processors' output for an RGB frame: H.264 segments (original, preview) and a thumbnail."""
    prefix = f"raw/{robot}/{session}/compressed/{camera}/rgb"
    ramp = np.linspace(0, 255, 320, dtype=np.uint8)
    frames = [np.dstack([np.tile(ramp, (180, 1)), np.full((180, 320), 40 * i, np.uint8),
                         np.tile(ramp[::-1], (180, 1))]) for i in range(6)]
    segment = h264.encode_segment(frames, fps=30.0, gop=6)
    thumb = jpeg(120, 68, 90)
    keys = {"original": f"{prefix}/original/{ts}.mp4", "preview": f"{prefix}/preview/{ts}.mp4",
            "thumbnail": f"processed/{robot}/{session}/thumbnails/{camera}/rgb/{ts}.jpg"}
    tiers = [FrameTier("original", keys["original"], "mp4", "libx264", 320, 180, len(segment), 0, 6),
             FrameTier("preview", keys["preview"], "mp4", "libx264", 320, 180, len(segment), 0, 6),
             tier("thumbnail", keys["thumbnail"], "jpeg", 120, 68, thumb)]
    return FrameBatch(robot, session, camera, FrameKind.RGB, objects=[
        stored(keys["original"], "video/mp4", segment), stored(keys["preview"], "video/mp4", segment),
        stored(keys["thumbnail"], "image/jpeg", thumb)],
        frames=[meta(camera, FrameKind.RGB, ts, tiers, thumb)])


def depth_batch(robot: str, session: str, camera: str, ts: int) -> FrameBatch:
    """A depth frame's tiers: PNG original 640x360 and preview 320x180, a JPEG thumbnail."""
    prefix = f"raw/{robot}/{session}/compressed/{camera}/depth"
    original, preview, thumb = png(640, 360), png(320, 180), jpeg(120, 68, 200)
    keys = {"original": f"{prefix}/original/{ts}.png", "preview": f"{prefix}/preview/{ts}.png",
            "thumbnail": f"processed/{robot}/{session}/thumbnails/{camera}/depth/{ts}.jpg"}
    tiers = [tier("original", keys["original"], "png", 640, 360, original),
             tier("preview", keys["preview"], "png", 320, 180, preview),
             tier("thumbnail", keys["thumbnail"], "jpeg", 120, 68, thumb)]
    return FrameBatch(robot, session, camera, FrameKind.DEPTH, objects=[
        stored(keys["original"], "image/png", original), stored(keys["preview"], "image/png", preview),
        stored(keys["thumbnail"], "image/jpeg", thumb)],
        frames=[meta(camera, FrameKind.DEPTH, ts, tiers, thumb)])


def cloud(count: int, seed: int) -> pointcloud.PointCloud:
    """A coloured helix of ``count`` points."""
    t = np.linspace(0, 6 * np.pi, count)
    points = np.stack([np.cos(t), np.sin(t), t / 6], axis=1).astype(np.float32)
    colors = (np.random.default_rng(seed).random((count, 3)) * 200 + 55).astype(np.uint8)
    return pointcloud.PointCloud(points, colors)


def draco_batch(robot: str, session: str, camera: str, ts: int) -> FrameBatch:
    key = f"raw/{robot}/{session}/compressed/{camera}/pointcloud/original/{ts}.drc"
    data = pointcloud.encode_draco(cloud(CLOUD_POINTS, 1))
    return FrameBatch(robot, session, camera, FrameKind.POINTCLOUD, objects=[
        stored(key, "application/vnd.google.draco", data)], frames=[meta(
            camera, FrameKind.POINTCLOUD, ts, [FrameTier("original", key, "draco", "draco", CLOUD_POINTS, 1,
                                                         len(data))], None)])


def ply(points: pointcloud.PointCloud) -> bytes:
    header = ("ply\nformat binary_little_endian 1.0\n"
              f"element vertex {len(points)}\nproperty float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n").encode()
    rows = np.zeros(len(points), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                        ("r", "u1"), ("g", "u1"), ("b", "u1")])
    for i, axis in enumerate("xyz"):
        rows[axis] = points.points[:, i]
    assert points.colors is not None
    for i, channel in enumerate("rgb"):
        rows[channel] = points.colors[:, i]
    return header + rows.tobytes()


def image_envelope(robot: str, session: str, camera: str, ts: int, seq: int, kind: str, fmt: str,
                   content: bytes) -> Any:
    payload = example_payload("images")
    payload.update(kind=kind, camera_id=camera, blob={"format": fmt, "content": content})
    return build_envelope("images", payload, robot_id=robot, session_id=session, seq=seq, timestamp=ts / 1e6)


@pytest.fixture(scope="module")
def seeded(api: RunningApi, landing: Landing, tag: str) -> dict[str, Any]:
    """One session: telemetry, a long list of small frames, a compacted RGB + depth frame (camera
    "cam"), a Draco and a PLY point cloud (camera "lidar")."""
    robot, session = f"rb-{tag}", f"s-media-{tag}"
    start = (now_us() // 1_000_000 - 120) * 1_000_000
    landing.session_start(robot, session, start, cameras=("front", "cam", "lidar"))
    landing.telemetry(SimulatedRobot(robot, session, start).records(100))  # 10 s at 100 Hz
    small = [jpeg(120, 68, 2 * k) for k in range(LISTED)]
    landing.write([image_envelope(robot, session, "front", start + k * 100_000, k, "thumbnail", "jpeg",
                                  small[k]) for k in range(LISTED)], to=("s3", "mongo", "redis"))
    cam_ts, drc_ts, ply_ts = start + 30_000_000, start + 40_000_000, start + 41_000_000
    landing.write([image_envelope(robot, session, "cam", cam_ts, LISTED, "rgb", "jpeg", jpeg(1280, 720, 30)),
                   image_envelope(robot, session, "lidar", ply_ts, LISTED + 1, "pointcloud", "ply",
                                  ply(cloud(PLY_POINTS, 2)))], to=("s3", "mongo", "redis"))
    landing.write([rgb_batch(robot, session, "cam", cam_ts), depth_batch(robot, session, "cam", cam_ts),
                   draco_batch(robot, session, "lidar", drc_ts)], to=("s3", "mongo", "redis"))
    landing.session_end(robot, session, start + 60_000_000)
    return {"robot": robot, "session": session, "start": start, "cam_ts": cam_ts,
            "url": f"{api.url}/?robot={robot}&session={session}"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module's tests (Playwright's sync API)."""
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser: Any, seeded: dict[str, Any]) -> Iterator[Any]:
    """The viewer on the seeded session, its Service Worker in control; page errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    viewer = context.new_page()
    errors: list[str] = []
    viewer.on("pageerror", lambda exc: errors.append(str(exc)))
    viewer.goto(seeded["url"])
    viewer.wait_for_function("window.robostreamViewer.offline.controlled")
    viewer.errors = errors
    ARTIFACTS.mkdir(exist_ok=True)
    yield viewer
    context.close()


def state(page: Any, name: str) -> Any:
    return page.evaluate(f"window.robostreamViewer.{name}")


def shot(page: Any, name: str) -> None:
    path = ARTIFACTS / f"api-viewer-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000


def rows_in_page(page: Any) -> list[int]:
    """The indexes of the frame list's rows that are in the page."""
    rows: list[int] = page.eval_on_selector_all("#frame-list .frame-row",
                                                "rows => rows.map(r => Number(r.dataset.index))")
    return rows


def open_row(page: Any, index: int) -> None:
    """Scroll the frame list to row ``index`` and click it."""
    page.eval_on_selector("#frame-list", f"(box) => {{ box.scrollTop = {index} * 44 - 88; }}")
    page.click(f"#frame-list .frame-row[data-index='{index}']")


def image_shows(page: Any, tier: str, width: int) -> None:
    page.wait_for_function(f"""(img => img.dataset.tier === '{tier}' && img.complete
        && img.naturalWidth === {width} && !img.hidden)(document.getElementById('frame-image'))""")


def test_the_frame_list_keeps_only_the_rows_on_screen(page: Any) -> None:
    total = LISTED + 3  # the front frames, cam, lidar (Draco), lidar (PLY)
    page.wait_for_function("window.robostreamViewer.frameList.frames === 200")  # one page of the list
    page.wait_for_function("[...document.querySelectorAll('#frame-list img')].every(i => i.complete"
                           " && i.naturalWidth === 120)")
    top = rows_in_page(page)
    first_page = state(page, "frameList")
    shot(page, "frame-list-top")
    # scrolling towards the end reads the next page; at the very end, the last rows are there
    page.eval_on_selector("#frame-list", "box => { box.scrollTop = box.scrollHeight; }")
    page.wait_for_function(f"window.robostreamViewer.frameList.frames === {total}"
                           " && window.robostreamViewer.frameList.done")
    page.eval_on_selector("#frame-list", "box => { box.scrollTop = box.scrollHeight; }")
    page.wait_for_function(f"document.querySelector(\"#frame-list .frame-row[data-index='{total - 1}']\")")
    bottom = rows_in_page(page)
    text = page.inner_text(f"#frame-list .frame-row[data-index='{total - 1}']")

    assert not first_page["done"]
    assert 0 in top and max(top) < 25  # the rows on screen and a few beyond, not 200
    assert len(bottom) < 25 and 0 not in bottom and total - 1 in bottom
    assert f"#{total}" in text and "lidar" in text and "pointcloud" in text
    assert state(page, "frameList.rows") == len(bottom)


def test_a_frame_loads_thumbnail_then_preview_then_the_original_on_a_click(page: Any) -> None:
    page.evaluate("""(img => { window.tiersShown = [];
        new MutationObserver(() => window.tiersShown.push(img.dataset.tier))
          .observe(img, {attributes: true, attributeFilter: ['data-tier']}); })(
        document.getElementById('frame-image'))""")
    open_row(page, LISTED)  # camera "cam": RGB (H.264 segments) and depth (PNG tiers)
    # RGB: the thumbnail; its preview tier is an H.264 segment, offered as such
    image_shows(page, "thumbnail", 120)
    page.wait_for_function("window.robostreamViewer.frameView.segment !== null")
    page.wait_for_selector("#frame-segment:not([hidden])")
    rgb = state(page, "frameView")
    page.click("#frame-kinds button:text('depth')")
    image_shows(page, "preview", 320)  # depth: thumbnail first, then the preview, by itself
    shot(page, "frame-preview")
    page.click("#frame-image")  # the original, on demand
    image_shows(page, "original", 640)
    depth = state(page, "frameView")
    shown = page.evaluate("window.tiersShown")
    page.click("#frame-kinds button:text('rgb')")
    image_shows(page, "thumbnail", 120)
    page.click("#frame-original")  # RGB's original: the robot's own 1280x720 JPEG
    image_shows(page, "original", 1280)
    shot(page, "frame-original")

    assert not page.errors
    assert rgb["kind"] == "rgb" and rgb["tier"] == "thumbnail"
    assert rgb["segment"].split("?")[0].endswith(".mp4")
    assert depth["kind"] == "depth" and depth["tier"] == "original"
    assert depth["url"].split("?")[0].endswith(".png")
    assert shown[-3:] == ["thumbnail", "preview", "original"]  # depth's, in that order, none skipped


def test_an_h264_segment_plays_as_video(page: Any) -> None:
    open_row(page, LISTED)
    page.wait_for_selector("#frame-segment:not([hidden])")
    page.click("#frame-segment")
    # Debian's Chromium decodes H.264 (canPlayType "probably"): the first picture is there
    page.wait_for_function("(v => !v.hidden && v.readyState >= 2 && v.videoWidth === 320)"
                           "(document.getElementById('frame-video'))")
    video = page.eval_on_selector("#frame-video", "v => ({src: v.currentSrc, error: v.error && v.error.code,"
                                  " height: v.videoHeight, duration: v.duration})")
    shot(page, "frame-video")

    assert video["error"] is None and video["height"] == 180
    assert "/cam/rgb/preview/" in video["src"] and video["src"].split("?")[0].endswith(".mp4")
    assert video["duration"] == pytest.approx(6 / 30, abs=0.05)


@pytest.mark.parametrize(("index", "points", "ext"), [(LISTED + 1, CLOUD_POINTS, ".drc"),
                                                      (LISTED + 2, PLY_POINTS, ".ply")])
def test_point_clouds_are_drawn_in_3d(page: Any, index: int, points: int, ext: str) -> None:
    open_row(page, index)
    page.wait_for_function(f"(v => v && v.points === {points} && v.tier === 'original')"
                           "(window.robostreamViewer.frameView)")
    view = state(page, "frameView")
    lit = page.evaluate("window.robostreamViewer.cloudLitPixels()")
    shot(page, f"pointcloud{ext.replace('.', '-')}")

    assert not page.errors
    assert view["kind"] == "pointcloud" and view["format"] == "pointcloud" and view["error"] is None
    assert view["url"].split("?")[0].endswith(ext)
    assert lit > points // 4  # the points are on the canvas (each 2x2 px, some hidden behind others)


def subscribed(channel: str, timeout_s: float = 20.0) -> None:
    """Wait until Redis has a subscriber on ``channel`` (or one of its ``:<type>`` channels)."""
    client = redis.Redis.from_url(TEST_STACK_ENV["ROBOSTREAM_REDIS__URL"])
    deadline = time.monotonic() + timeout_s
    try:
        while not client.pubsub_channels(f"{channel}*"):
            assert time.monotonic() < deadline, f"nobody subscribed to {channel} within {timeout_s} s"
            time.sleep(0.05)
    finally:
        client.close()


def test_the_live_camera_view_follows_progressively(page: Any, landing: Landing,
                                                    seeded: dict[str, Any]) -> None:
    page.click("#live-button")
    page.wait_for_function("document.getElementById('status').textContent === 'live'")
    # Pub/sub delivers only to subscribers: write once the API's subscription has reached Redis
    # (the page says 'live' when its WebSocket is open, which can come first).
    subscribed(f"live:{seeded['robot']}:{seeded['session']}")
    ts = now_us()
    landing.write([depth_batch(seeded["robot"], seeded["session"], "cam", ts)], to=("s3", "mongo", "redis"))
    page.wait_for_function(f"(v => v && v.id.endsWith('cam-{ts}') && v.tier === 'preview')"
                           "(window.robostreamViewer.frameView)", timeout=20_000)
    image_shows(page, "preview", 320)
    shot(page, "live-camera")

    assert not page.errors


def test_a_session_viewed_once_replays_offline(page: Any) -> None:
    page.click("#history-button")
    page.wait_for_function("(s => !s.historyLoading && s.historyFetches > 0)(window.robostreamViewer)")
    online = page.evaluate("window.robostreamViewer.historyData.map(r => [r.ts_us, r.values])")
    open_row(page, LISTED)
    image_shows(page, "thumbnail", 120)
    page.wait_for_function("window.robostreamViewer.frameView.segment !== null")
    page.wait_for_function("window.robostreamViewer.storedOffline().then(s => (s.history || 0) > 0)")

    page.context.set_offline(True)  # the API and S3 stay up, but the browser cannot reach them
    page.reload()
    page.wait_for_function("!['idle', 'connecting…'].includes(document.getElementById('status').textContent)")
    assert page.inner_text("#status").startswith("offline"), page.inner_text("#status")
    page.wait_for_function("window.robostreamViewer.frameList.frames === 200")
    page.eval_on_selector("#frame-list", "box => { box.scrollTop = box.scrollHeight; }")
    page.wait_for_function(f"window.robostreamViewer.frameList.frames === {LISTED + 3}")
    page.click("#history-button")
    page.wait_for_function("(s => !s.historyLoading && s.historyFetches > 0)(window.robostreamViewer)")
    offline = page.evaluate("window.robostreamViewer.historyData.map(r => [r.ts_us, r.values])")
    open_row(page, LISTED)
    image_shows(page, "thumbnail", 120)
    kept = page.evaluate("window.robostreamViewer.storedOffline()")
    on_line = page.evaluate("navigator.onLine")
    shot(page, "offline")
    page.context.set_offline(False)

    assert not on_line
    assert offline == online and len(online) > 0
    assert kept["page"] == 1 and kept["history"] >= 1 and kept["frames"] >= 2 and kept["object"] >= 10
    assert not page.errors


def play_segment(page: Any) -> dict[str, Any]:
    """Click the frame view's H.264 segment and wait until it has played to its end."""
    page.wait_for_selector("#frame-segment:not([hidden])")
    page.click("#frame-segment")
    page.wait_for_function("(v => !v.hidden && v.ended && v.videoWidth === 320)"
                           "(document.getElementById('frame-video'))")
    video: dict[str, Any] = page.eval_on_selector(
        "#frame-video", "v => ({src: v.currentSrc, error: v.error && v.error.code, height: v.videoHeight,"
        " duration: v.duration, played: v.played.length && v.played.end(v.played.length - 1)})")
    return video


def test_a_segment_played_once_plays_again_offline(page: Any) -> None:
    open_row(page, LISTED)
    online = play_segment(page)

    page.context.set_offline(True)
    try:
        page.reload()
        page.wait_for_function("window.robostreamViewer.offline.controlled")
        page.wait_for_function("window.robostreamViewer.frameList.frames === 200")
        page.eval_on_selector("#frame-list", "box => { box.scrollTop = box.scrollHeight; }")
        page.wait_for_function(f"window.robostreamViewer.frameList.frames === {LISTED + 3}")
        open_row(page, LISTED)
        # The <video> asks for byte ranges; the Service Worker answers them from the kept object.
        offline = play_segment(page)
        view = state(page, "frameView")
        ranges = page.evaluate("""async (url) => {
            const whole = new Uint8Array(await (await fetch(url)).arrayBuffer());
            const ask = async (range) => {
              const r = await fetch(url, {headers: {Range: range}});
              return {status: r.status, range: r.headers.get('Content-Range'),
                      body: Array.from(new Uint8Array(await r.arrayBuffer()))};
            };
            return {size: whole.length, head: Array.from(whole.slice(10, 20)),
                    tail: Array.from(whole.slice(-4)), middle: await ask('bytes=10-19'),
                    suffix: await ask('bytes=-4'), past: await ask(`bytes=${whole.length}-`)};
        }""", offline["src"])
        on_line = page.evaluate("navigator.onLine")
        shot(page, "offline-video")
    finally:
        page.context.set_offline(False)

    assert not on_line
    assert offline["src"].split("?")[0] == online["src"].split("?")[0]
    assert "/cam/rgb/preview/" in offline["src"]
    assert offline["error"] is None and offline["height"] == 180
    assert offline["duration"] == pytest.approx(6 / 30, abs=0.05)
    assert offline["played"] == pytest.approx(offline["duration"], abs=0.05)  # played to its end
    assert view["format"] == "video" and view["tier"] == "preview"
    size = ranges["size"]  # seeking offline: any byte range of the kept segment
    assert ranges["middle"] == {"status": 206, "range": f"bytes 10-19/{size}", "body": ranges["head"]}
    assert ranges["suffix"] == {"status": 206, "range": f"bytes {size - 4}-{size - 1}/{size}",
                                "body": ranges["tail"]}
    assert ranges["past"]["status"] == 416 and ranges["past"]["range"] == f"bytes */{size}"
    assert not page.errors


def test_the_service_worker_is_served_for_the_whole_viewer(api: RunningApi) -> None:
    def head(path: str) -> Any:
        with urllib.request.urlopen(f"{api.url}{path}", timeout=10) as response:
            return response.headers

    worker, script = head("/static/sw.js"), head("/static/viewer.js")
    wasm = head("/static/vendor/draco/draco_decoder.wasm")

    assert worker["Content-Type"].split(";")[0] in ("text/javascript", "application/javascript")
    assert worker["Service-Worker-Allowed"] == "/"  # its scope may be "/", above /static/
    assert worker["Cache-Control"] == "no-cache"  # a new version is seen on the next visit
    assert "Service-Worker-Allowed" not in script
    assert wasm["Content-Type"] == "application/wasm"
