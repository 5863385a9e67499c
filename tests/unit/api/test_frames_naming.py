"""Which stored image serves a kind at a tier; frame ids; presigned URL expiry."""

from __future__ import annotations

import time

import pytest

from robostream.api.errors import ApiError
from robostream.api.frames import kinds_of, parse_frame_api_id, pick_name
from robostream.api.stores import Presigner, url_expiry_s
from robostream.config import Settings

RAW = {"rgb", "depth", "thumbnail"}
COMPACTED = {"rgb_original", "rgb_preview", "rgb_thumbnail", "thumbnail", "depth_original"}


@pytest.mark.parametrize(("names", "kind", "tier", "expected"), [
    (RAW, "rgb", "original", "rgb"), (RAW, "rgb", "thumbnail", "thumbnail"), (RAW, "rgb", "preview", "rgb"),
    (RAW, "depth", "thumbnail", "depth"), (COMPACTED, "rgb", "preview", "rgb_preview"),
    (COMPACTED | {"rgb"}, "rgb", "original", "rgb"), (COMPACTED, "rgb", "original", "rgb_original"),
    (COMPACTED, "depth", "thumbnail", "depth_original"), (RAW, "pointcloud", "original", None),
])
def test_the_best_stored_image_for_a_tier(names: set[str], kind: str, tier: str,
                                          expected: str | None) -> None:
    assert pick_name(names, kind, tier) == expected


def test_kinds_of_a_frame() -> None:
    assert kinds_of(COMPACTED) == ["depth", "rgb"]
    assert kinds_of({"thumbnail"}) == ["rgb"]


def test_frame_ids() -> None:
    assert parse_frame_api_id("robot_001:s-1:front-1795600800000000") == (
        "robot_001", "s-1", "front", 1_795_600_800_000_000)
    assert parse_frame_api_id("r:s:wrist-cam-12") == ("r", "s", "wrist-cam", 12)
    for bad in ("front-1", "r:s:front", "r:s:front-x", "r:..:front-1", "r:s:t:front-1", "r:s:-1"):
        with pytest.raises(ApiError) as caught:
            parse_frame_api_id(bad)
        assert (caught.value.status, caught.value.code) == (400, "invalid_id")


def test_presigned_urls_say_when_they_expire() -> None:
    s3 = Settings().s3.model_copy(update={"presign_expiry_s": 120})
    settings = Settings().model_copy(update={"s3": s3})
    url = Presigner(settings).get_url("robostream", "raw/r/s/frames/front/1_rgb.jpg")
    assert url.startswith(settings.s3.endpoint)
    expiry = url_expiry_s(url)
    assert expiry is not None and abs(expiry - (time.time() + 120)) < 5
    sigv4 = ("http://h/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20261125T100000Z"
             "&X-Amz-Expires=3600&X-Amz-Signature=x")
    assert url_expiry_s(sigv4) == 1_795_600_800 + 3600
    assert url_expiry_s("http://h/b/k") is None
