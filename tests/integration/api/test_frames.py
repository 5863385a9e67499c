"""Frames: metadata with presigned URLs that SeaweedFS serves, hot-loaded Redis first, then
MongoDB with S3 presigning, the caches updated on the way."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from robostream.config import Settings
from robostream.sinks import keys
from tests.integration.api.helpers import Landing, RunningApi, now_us


def content_of(envelope: Any) -> bytes:
    return bytes(envelope.payload["blob"]["content"])


@pytest.fixture(scope="module")
def short_lived_api(api_settings: Settings) -> Iterator[RunningApi]:
    """An API that signs URLs for 2 seconds."""
    s3 = api_settings.s3.model_copy(update={"presign_expiry_s": 2})
    settings = api_settings.model_copy(update={"s3": s3})
    with RunningApi(settings) as running:
        yield running


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_cold_frames_get_presigned_urls_that_work_and_are_cached(
        api: RunningApi, landing: Landing, ids: dict[str, str], mongo: Any,
        redis_client: Any, api_settings: Settings) -> None:
    robot, session = ids["robot"], ids["session"]
    start = now_us() - 60_000_000
    landing.session_start(robot, session, start)
    sent = [landing.image(robot, session, start + i * 33_333, seq=i, to=("s3", "mongo")) for i in range(3)]
    frames_url = f"{api.url}/v1/frames?robot={robot}&session={session}"
    async with aiohttp.ClientSession() as http:
        body = await get_json(http, frames_url)
        assert body["source"] == "presigned"  # nothing in Redis: MongoDB + S3 presigning
        frames = body["frames"]
        assert [f["timestamp_us"] for f in frames] == [e.timestamp_us for e in sent]
        for frame, envelope in zip(frames, sent, strict=True):
            assert frame["urls"]["rgb"].startswith(api_settings.s3.endpoint)  # the client's endpoint
            async with http.get(frame["urls"]["rgb"]) as response:  # SeaweedFS serves it
                assert response.status == 200
                assert await response.read() == content_of(envelope)
        again = await get_json(http, frames_url)  # the caches were updated: Redis answers now
    assert again["source"] == "redis"
    assert [f["urls"] for f in again["frames"]] == [f["urls"] for f in frames]
    key = keys.frame_key(robot, session, "front", sent[0].timestamp_us)
    assert redis_client.hget(key, "url:rgb").decode() == frames[0]["urls"]["rgb"]
    assert 0 < redis_client.ttl(key) <= api_settings.redis.frame_ttl_s
    doc = mongo[api_settings.mongo.database].frames_metadata.find_one(
        {"_id": keys.frame_doc_id(robot, session, "front", sent[0].timestamp_us)})
    assert doc["cached"] is True and doc["cache_expiry"] is not None


async def test_expired_urls_are_refused_and_signed_again(
        short_lived_api: RunningApi, landing: Landing, ids: dict[str, str]) -> None:
    robot, session = ids["robot"], ids["session"]
    start = now_us() - 60_000_000
    landing.session_start(robot, session, start)
    landing.image(robot, session, start, seq=0, to=("s3", "mongo"))
    frames_url = f"{short_lived_api.url}/v1/frames?robot={robot}&session={session}"
    async with aiohttp.ClientSession() as http:
        first = (await get_json(http, frames_url))["frames"][0]["urls"]["rgb"]
        await asyncio.sleep(3)  # past the 2 s expiry
        async with http.get(first) as response:
            assert response.status == 403  # SeaweedFS refuses the expired URL
        fresh = (await get_json(http, frames_url))["frames"][0]["urls"]["rgb"]  # expired in the cache
        assert fresh != first
        async with http.get(fresh) as response:
            assert response.status == 200


async def test_hot_frames_come_from_redis(api: RunningApi, landing: Landing, ids: dict[str, str],
                                          redis_client: Any) -> None:
    robot, session = ids["robot"], ids["session"]
    start = now_us() - 10_000_000
    landing.session_start(robot, session, start)
    sent = [landing.image(robot, session, start + i * 100_000, seq=i) for i in range(5)]  # + Redis sink
    async with aiohttp.ClientSession() as http:
        body = await get_json(http, f"{api.url}/v1/frames?robot={robot}&session={session}&limit=3")
    assert body["source"] == "redis"
    assert [f["timestamp_us"] for f in body["frames"]] == [e.timestamp_us for e in sent[-3:]]  # newest 3
    for frame in body["frames"]:
        stored = redis_client.hget(keys.frame_key(robot, session, "front", frame["timestamp_us"]), "url:rgb")
        assert frame["urls"]["rgb"] == stored.decode()  # the sink's URL, not a new signature


async def test_a_frame_id_redirects_to_its_image(api: RunningApi, landing: Landing,
                                                 ids: dict[str, str]) -> None:
    robot, session = ids["robot"], ids["session"]
    start = now_us() - 5_000_000
    landing.session_start(robot, session, start)
    rgb = landing.image(robot, session, start, seq=1, to=("s3", "mongo"))
    depth = landing.image(robot, session, start, seq=2, kind="depth", to=("s3", "mongo"))
    thumb = landing.image(robot, session, start, seq=3, kind="thumbnail", size=300, to=("s3", "mongo"))
    frame_id = f"{robot}:{session}:front-{start}"
    async with aiohttp.ClientSession() as http:
        for query, envelope in (("", rgb), ("?kind=depth", depth), ("?tier=thumbnail", thumb)):
            async with http.get(f"{api.url}/v1/frames/{frame_id}{query}", allow_redirects=False) as response:
                assert response.status == 307
                location = response.headers["Location"]
            async with http.get(location) as image:
                assert await image.read() == content_of(envelope)
        listed = await get_json(http, f"{api.url}/v1/frames?robot={robot}&session={session}&tier=thumbnail")
        assert listed["frames"][0]["url_names"] == {"rgb": "thumbnail", "depth": "depth"}
        for path, status, code in ((f"/v1/frames/{robot}:{session}:front-1", 404, "not_found"),
                                   (f"/v1/frames/{frame_id}?kind=pointcloud", 404, "not_found"),
                                   ("/v1/frames/nonsense", 400, "invalid_id"),
                                   (f"/v1/frames/{robot}:..:front-1", 400, "invalid_id")):
            async with http.get(api.url + path, allow_redirects=False) as response:
                assert (response.status, (await response.json())["code"]) == (status, code), path
