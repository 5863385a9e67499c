"""The clients the API reads with: Redis (``redis.asyncio``), MongoDB (``AsyncMongoClient``) and
an S3 presigner (boto3 presigning is local CPU work: no network call, no executor needed).

URLs are presigned (SigV4) for ``s3.public_endpoint`` (default ``s3.endpoint``), the endpoint the
client will call.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis.asyncio as aredis
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from robostream.config import Settings
from robostream.sinks.s3 import presign_client

_AMZ_DATE = "%Y%m%dT%H%M%SZ"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` (how documents refer to objects) -> ``(bucket, key)``."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def url_expiry_s(url: str) -> float | None:
    """When a presigned URL stops working, in epoch seconds (SigV4 ``X-Amz-Date`` +
    ``X-Amz-Expires``, or SigV2 ``Expires``); ``None`` if it does not say."""
    query = parse_qs(urlsplit(url).query)
    try:
        if "Expires" in query:
            return float(query["Expires"][0])
        signed = time.strptime(query["X-Amz-Date"][0], _AMZ_DATE)
        return float(calendar.timegm(signed) + int(query["X-Amz-Expires"][0]))
    except (KeyError, IndexError, ValueError):
        return None


class Presigner:
    """Presigned GET URLs for objects in S3 (valid ``s3.presign_expiry_s`` seconds)."""

    def __init__(self, settings: Settings) -> None:
        self.expiry_s = settings.s3.presign_expiry_s
        self._client: Any = presign_client(settings)

    def get_url(self, bucket: str, key: str) -> str:
        url: str = self._client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=self.expiry_s)
        return url

    def get_url_for(self, uri: str) -> str:
        """Presign ``s3://bucket/key``."""
        return self.get_url(*parse_s3_uri(uri))


@dataclass
class Stores:
    """What the handlers read: ``redis``, ``mongo`` / ``db`` and the S3 ``presigner``."""

    redis: aredis.Redis
    mongo: AsyncMongoClient[dict[str, Any]]
    db: AsyncDatabase[dict[str, Any]]
    presigner: Presigner

    @classmethod
    def connect(cls, settings: Settings) -> Stores:
        """Clients for ``settings`` (connections open lazily on first use)."""
        redis = aredis.Redis.from_url(settings.redis.url, socket_connect_timeout=2, socket_timeout=10,
                                      health_check_interval=30, client_name="robostream-api")
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.mongo.uri, serverSelectionTimeoutMS=3000, connectTimeoutMS=2000,
            socketTimeoutMS=120_000, appname="robostream-api", tz_aware=True)
        return cls(redis, mongo, mongo[settings.mongo.database], Presigner(settings))

    async def problems(self) -> dict[str, str | None]:
        """``{store: None | "down: reason"}`` for /healthz."""
        out: dict[str, str | None] = {}
        try:
            await self.redis.ping()
            out["redis"] = None
        except Exception as exc:  # any failure is "down" here
            out["redis"] = f"{type(exc).__name__}: {exc}"
        try:
            await self.db.command("ping")
            out["mongo"] = None
        except Exception as exc:
            out["mongo"] = f"{type(exc).__name__}: {exc}"
        return out

    async def close(self) -> None:
        await self.redis.aclose()
        await self.mongo.close()
