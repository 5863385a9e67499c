"""Claim-check: blobs above ``gateway.max_inline_bytes`` go to S3; the topic gets the reference.

The object key is ``raw/{robot_id}/{session_id}/blobs/{data_type}/{seq}-{sha256[:16]}``: the same
envelope sent twice lands on the same key (a resend after a lost ack is harmless). Objects above
``s3.multipart_threshold_bytes`` are uploaded in parts. boto3 blocks, so uploads run in a small
thread pool.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from robostream.config import Settings
from robostream.errors import RobostreamError
from robostream.schemas import BINARY_TYPES, Envelope


class ClaimCheckError(RobostreamError):
    """S3 did not take the object; the envelope should be sent again later."""


def inline_size(envelope: Envelope) -> int | None:
    """Size of a binary payload's inline content, None when there is none (or it is a reference)."""
    if envelope.data_type not in BINARY_TYPES:
        return None
    blob = envelope.payload.get("blob")
    content = blob.get("content") if isinstance(blob, dict) else None
    return len(content) if isinstance(content, bytes | bytearray) else None


def needs_claim_check(envelope: Envelope, max_inline_bytes: int) -> bool:
    """True when the envelope carries inline bytes above ``max_inline_bytes``."""
    size = inline_size(envelope)
    return size is not None and size > max_inline_bytes


def object_key(envelope: Envelope) -> str:
    """Where the blob of ``envelope`` is stored (ids are validated by the codec)."""
    sha = envelope.payload["blob"]["sha256"]
    return (f"raw/{envelope.robot_id}/{envelope.session_id}/blobs/{envelope.data_type}/"
            f"{envelope.seq:020d}-{sha[:16]}")


def with_reference(envelope: Envelope, bucket: str, key: str) -> Envelope:
    """A copy of ``envelope`` whose blob content is the claim-check ``{bucket, key, size, sha256}``."""
    blob = envelope.payload["blob"]
    ref = {"bucket": bucket, "key": key, "size": blob["size_bytes"], "sha256": blob["sha256"]}
    payload = {**envelope.payload, "blob": {**blob, "content": ref}}
    return dataclasses.replace(envelope, payload=payload)


class ClaimCheckStore:
    """Uploads blobs to ``s3.bucket`` from a thread pool."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bucket = settings.s3.bucket
        self._executor = ThreadPoolExecutor(settings.gateway.claim_check_workers,
                                            thread_name_prefix="gateway-claim-check")
        self._client: Any = None
        self._transfer: Any = None

    def _ensure_client(self) -> Any:
        if self._client is None:
            import boto3
            from boto3.s3.transfer import TransferConfig
            from botocore.config import Config

            s3 = self.settings.s3
            self._client = boto3.client(
                "s3", endpoint_url=s3.endpoint, region_name=s3.region,
                aws_access_key_id=s3.access_key,
                aws_secret_access_key=s3.secret_key.get_secret_value(),
                config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                              retries={"mode": "standard"},
                              max_pool_connections=max(10, self.settings.gateway.claim_check_workers * 4)),
            )
            self._transfer = TransferConfig(
                multipart_threshold=s3.multipart_threshold_bytes,
                multipart_chunksize=s3.multipart_threshold_bytes,
                max_concurrency=4, use_threads=True,
            )
        return self._client

    def _upload(self, envelope: Envelope, key: str) -> None:
        client = self._ensure_client()
        blob = envelope.payload["blob"]
        extra = {
            "Metadata": {
                "sha256": blob["sha256"], "robot_id": envelope.robot_id,
                "session_id": envelope.session_id, "data_type": str(envelope.data_type),
                "seq": str(envelope.seq), "format": blob["format"],
            },
        }
        client.upload_fileobj(io.BytesIO(blob["content"]), self.bucket, key, ExtraArgs=extra,
                              Config=self._transfer)

    async def check_in(self, envelope: Envelope) -> Envelope:
        """Upload the blob of ``envelope``; return the envelope carrying the reference instead.

        Raises :class:`ClaimCheckError` when S3 refuses or cannot be reached.
        """
        key = object_key(envelope)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._upload, envelope, key)
        except Exception as exc:  # botocore raises many types; all mean "not stored"
            raise ClaimCheckError(f"S3 upload of s3://{self.bucket}/{key} failed: {exc}") from exc
        return with_reference(envelope, self.bucket, key)

    def bucket_problem(self) -> str | None:
        """Blocking: None when the bucket answers, else why not."""
        try:
            self._ensure_client().head_bucket(Bucket=self.bucket)
        except Exception as exc:  # any failure is reported, the gateway still starts
            return f"S3 bucket {self.bucket} at {self.settings.s3.endpoint}: {exc}"
        return None

    def close(self) -> None:
        """Wait for running uploads, then release the threads."""
        self._executor.shutdown(wait=True)
