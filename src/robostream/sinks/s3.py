"""The S3 sink: binary payloads to deterministic keys, with content type and metadata.

* ``images`` -> ``raw/{robot}/{session}/frames/{camera}/{ts}_{kind}.{ext}`` (``_rgb.jpg``,
  ``_depth.png``, ``_pointcloud.ply``);
* the other binary types (video, audio, file, safetensors, msgpack, zip, tar) ->
  ``raw/{robot}/{session}/{data_type}/{ts}_{seq}[_{name}|.{ext}]``;
* ``derived.frames`` (the processors' ``FrameBatch``): each object at the key the processor
  chose (``raw/{robot}/{session}/compressed/...``, ``processed/{robot}/{session}/thumbnails/...``;
  checked to stay under its own robot session); hourly-bundle parts wait under
  ``{bundle key}.parts/{part}`` and the bundle is written (parts concatenated in order) when its
  last part arrives.

A claim-check reference (the gateway already put the blob in S3) is never uploaded again: the
sink checks the object is there (HEAD, size) and records nothing else -- the MongoDB and Redis
sinks point at the referenced key. Objects at or above ``s3.multipart_threshold_bytes`` go up
in multipart; above 1 MiB a HEAD first skips objects already stored with the same SHA-256 (a
replay). Uploads of a batch run in parallel threads; ``write`` returns when all are stored.

At start-up (or the first write, if the store is down then) the sink writes the bucket's
lifecycle rules from config (:mod:`robostream.sinks.lifecycle`); originals and hourly bundles are
written in the cold storage class, unless the store refuses that class (then standard).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from robostream.config import Settings
from robostream.processors import FrameBatch
from robostream.schemas import BINARY_TYPES, DataType, Envelope
from robostream.sinks import keys
from robostream.sinks.base import PoisonRecordError, RetriableSinkError, SinkContext, SinkRecord
from robostream.sinks.lifecycle import apply_lifecycle, storage_class_for

log = logging.getLogger(__name__)

DEDUP_HEAD_ABOVE_BYTES = 1024 * 1024
UPLOAD_THREADS = 8
_RETRIABLE_CODES = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout",
                              "RequestTimeTooSkewed", "AccessDenied", "InvalidAccessKeyId",
                              "SignatureDoesNotMatch", "NoSuchBucket"})


@dataclass(frozen=True)
class Upload:
    """One object to put (``data``) or a claim-check to verify (``data is None``)."""

    record: SinkRecord
    bucket: str
    key: str
    data: bytes | None
    size: int
    sha256: str
    content_type: str
    metadata: dict[str, str]


def object_metadata(record: SinkRecord, **fields: Any) -> dict[str, str]:
    """``x-amz-meta-*`` of an object: ids, seq, timestamp, checksum and the Kafka coordinates."""
    meta = {k.replace("_", "-"): str(v) for k, v in fields.items() if v is not None}
    meta["source"] = f"{record.topic}/{record.partition}/{record.offset}"
    return meta


def upload_for_envelope(envelope: Envelope, record: SinkRecord, settings: Settings) -> Upload | None:
    """The upload of a binary data type's blob (``None`` for other data types)."""
    if envelope.data_type not in BINARY_TYPES:
        return None
    payload = envelope.payload
    blob = payload["blob"]
    content = blob["content"]
    fmt = str(blob["format"])
    _, content_type = keys.extension_and_type(fmt)
    if envelope.data_type is DataType.IMAGES:
        key = keys.raw_frame_key(envelope.robot_id, envelope.session_id, payload["camera_id"],
                                 envelope.timestamp_us, str(payload["kind"]), fmt)
        extra = {"camera_id": payload["camera_id"], "kind": payload["kind"],
                 "width": payload["width"], "height": payload["height"]}
    else:
        key = keys.raw_object_key(envelope.robot_id, envelope.session_id, str(envelope.data_type),
                                  envelope.seq, envelope.timestamp_us, fmt, payload.get("name"))
        extra = {"name": keys.safe_file_name(payload["name"]) if payload.get("name") else None}
    metadata = object_metadata(
        record, robot_id=envelope.robot_id, session_id=envelope.session_id,
        data_type=envelope.data_type, seq=envelope.seq, timestamp_us=envelope.timestamp_us,
        sha256=blob["sha256"], format=fmt, **extra,
    )
    if isinstance(content, dict):  # claim-check: verify, never re-upload
        return Upload(record, str(content["bucket"]), str(content["key"]), None,
                      int(content["size"]), str(content["sha256"]), content_type, metadata)
    return Upload(record, settings.s3.bucket, key, bytes(content), int(blob["size_bytes"]),
                  str(blob["sha256"]), content_type, metadata)


_PART_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


def parts_prefix(bundle_key: str) -> str:
    """Where the parts of an hourly bundle wait until its last part: ``{key}.parts/``."""
    return f"{bundle_key}.parts/"


def uploads_for_frames(batch: FrameBatch, record: SinkRecord, settings: Settings) -> list[Upload]:
    """The objects of a processors' ``FrameBatch`` (keys chosen by the processor, checked here)
    and its bundle parts (``{bundle key}.parts/{part}``)."""
    uploads = []
    common = {"robot_id": batch.robot_id, "session_id": batch.session_id,
              "camera_id": batch.camera_id, "kind": batch.kind.value}
    for obj in batch.objects:
        key = keys.validate_object_key(obj.key, batch.robot_id, batch.session_id)
        if len(obj.content) != obj.size_bytes:
            raise ValueError(f"{key}: size_bytes {obj.size_bytes} != {len(obj.content)} bytes")
        uploads.append(Upload(record, settings.s3.bucket, key, obj.content, obj.size_bytes,
                              obj.sha256, obj.content_type,
                              object_metadata(record, sha256=obj.sha256, **common)))
    for part in batch.bundle_parts:
        key = keys.validate_object_key(part.key, batch.robot_id, batch.session_id)
        if not _PART_RE.fullmatch(part.part):
            raise ValueError(f"unsafe bundle part name {part.part!r}")
        sha = hashlib.sha256(part.content).hexdigest()
        uploads.append(Upload(record, settings.s3.bucket, parts_prefix(key) + part.part,
                              part.content, len(part.content), sha, "application/gzip",
                              object_metadata(record, sha256=sha, bundle=key, last=part.last,
                                              **common)))
    return uploads


def completed_bundles(batch: FrameBatch) -> list[str]:
    """Bundle keys whose last part this batch carries (to assemble once the parts are stored)."""
    return [part.key for part in batch.bundle_parts if part.last]


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def refuses_storage_class(exc: BaseException) -> bool:
    """The store answered ``InvalidStorageClass`` (directly, or inside boto3's multipart
    ``S3UploadFailedError``)."""
    return any(isinstance(e, ClientError) and _error_code(e) == "InvalidStorageClass"
               for e in (exc, exc.__cause__, exc.__context__))


def is_retriable(exc: BaseException) -> bool:
    """Store trouble (network, 5xx, throttling, credentials, missing bucket) vs. a bad object."""
    if isinstance(exc, ClientError):
        return _status(exc) >= 500 or _error_code(exc) in _RETRIABLE_CODES
    return isinstance(exc, BotoCoreError | OSError)


def s3_client(settings: Settings, endpoint: str | None = None) -> Any:
    """A boto3 S3 client for ``settings.s3`` (path-style, short timeouts, few retries), talking to
    ``endpoint`` (default ``s3.endpoint``).

    Requests and presigned URLs use Signature Version 4 (``X-Amz-Algorithm=AWS4-HMAC-SHA256``):
    botocore presigns with the deprecated version 2 unless told, which AWS refuses for buckets
    created since 2020.
    """
    return boto3.client(
        "s3",
        endpoint_url=endpoint or settings.s3.endpoint,
        region_name=settings.s3.region,
        aws_access_key_id=settings.s3.access_key,
        aws_secret_access_key=settings.s3.secret_key.get_secret_value(),
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"}, connect_timeout=3, read_timeout=60,
            retries={"max_attempts": 2, "mode": "standard"},
            max_pool_connections=UPLOAD_THREADS * 2,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def presign_client(settings: Settings) -> Any:
    """The client that presigns GET URLs, for ``s3.public_endpoint`` (the host browsers reach).

    SigV4 signs the Host header, so a URL must be signed for the host:port its user will call;
    presigning is local work, this client never calls the endpoint.
    """
    return s3_client(settings, settings.s3.presign_endpoint)


class _ChunkedWriter:
    """Writes one object from a stream of blocks: one PUT if small, else a multipart upload."""

    def __init__(self, client: Any, bucket: str, key: str, chunk: int, extra: dict[str, Any]) -> None:
        self.client, self.bucket, self.key, self.chunk, self.extra = client, bucket, key, chunk, extra
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self.size = 0

    def write(self, block: bytes) -> None:
        self._buffer += block
        self.size += len(block)
        if len(self._buffer) >= self.chunk:
            self._send_part(bytes(self._buffer))
            self._buffer.clear()

    def _send_part(self, data: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, **self.extra)["UploadId"]
        number = len(self._parts) + 1
        etag = self.client.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
                                       PartNumber=number, Body=data)["ETag"]
        self._parts.append({"PartNumber": number, "ETag": etag})

    def close(self) -> int:
        if self._upload_id is None:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=bytes(self._buffer),
                                   **self.extra)
            return self.size
        if self._buffer:
            self._send_part(bytes(self._buffer))
        self.client.complete_multipart_upload(Bucket=self.bucket, Key=self.key,
                                              UploadId=self._upload_id,
                                              MultipartUpload={"Parts": self._parts})
        return self.size

    def abort(self) -> None:
        if self._upload_id is not None:
            with contextlib.suppress(ClientError, BotoCoreError, OSError):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key,
                                                   UploadId=self._upload_id)


class S3Sink:
    """Lands binary payloads in S3 (see the module docstring). One instance per task."""

    def __init__(self, settings: Settings, *, client: Any = None) -> None:
        self.settings = settings
        self._client = client
        self._context: SinkContext | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._transfer = TransferConfig(
            multipart_threshold=settings.s3.multipart_threshold_bytes,
            multipart_chunksize=settings.s3.multipart_threshold_bytes,
            use_threads=False,
        )
        self._counts_lock = threading.Lock()
        self._lifecycle_pending = settings.retention.s3_lifecycle
        self._classes_refused = False
        self.uploaded = 0
        self.skipped = 0
        self.claim_checked = 0
        self.bytes_uploaded = 0

    # -- lifecycle -----------------------------------------------------------------------------

    def open(self, context: SinkContext) -> None:
        """Create the client and the upload threads."""
        self._context = context
        if self._client is None:
            self._client = s3_client(self.settings)
        self._pool = ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix=f"s3-{context.connector}")
        try:
            self.ensure_lifecycle()
        except (ClientError, BotoCoreError, OSError) as exc:
            if not is_retriable(exc):
                raise
            log.warning("S3 not reachable at start-up (%s); lifecycle rules on the first write", exc)

    def ensure_lifecycle(self) -> None:
        """Write the bucket's lifecycle rules once per sink (idempotent: only if they differ)."""
        if self._lifecycle_pending:
            done = apply_lifecycle(self.client, self.settings)
            log.info("s3://%s lifecycle rules: %s", self.settings.s3.bucket, done)
            self._lifecycle_pending = False

    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("S3Sink is not open")
        return self._client

    def ping(self) -> None:
        """Raise :class:`RetriableSinkError` unless the bucket answers."""
        try:
            self.client.head_bucket(Bucket=self.settings.s3.bucket)
        except (ClientError, BotoCoreError, OSError) as exc:
            raise RetriableSinkError(f"S3 unreachable: {exc}") from exc

    def flush(self) -> None:
        """``write`` waits for its uploads: nothing is pending."""

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # -- write ---------------------------------------------------------------------------------

    def plan(self, batch: Sequence[SinkRecord]) -> tuple[list[Upload], list[str]]:
        """The uploads of ``batch`` (other data types are skipped) and the bundles to assemble."""
        uploads: list[Upload] = []
        bundles: list[str] = []
        for record in batch:
            item = record.item
            try:
                upload: Upload | None = None
                if isinstance(item, Envelope):
                    upload = upload_for_envelope(item, record, self.settings)
                elif isinstance(item, FrameBatch):
                    uploads.extend(uploads_for_frames(item, record, self.settings))
                    bundles.extend(completed_bundles(item))
            except (ValueError, KeyError, TypeError) as exc:
                self._report(record, PoisonRecordError(f"cannot map record to S3: {exc}"))
                continue
            if upload is not None:
                uploads.append(upload)
        return uploads, bundles

    def write(self, batch: Sequence[SinkRecord]) -> None:
        """Upload the batch's blobs in parallel; raise ``RetriableSinkError`` on store trouble."""
        try:
            self.ensure_lifecycle()
        except (ClientError, BotoCoreError, OSError) as exc:
            raise RetriableSinkError(f"S3: lifecycle rules not written: {exc}") from exc
        uploads, bundles = self.plan(batch)
        if uploads:
            self._upload_all(uploads)
        for bundle in dict.fromkeys(bundles):
            try:
                self._assemble(bundle)
            except (ClientError, BotoCoreError, OSError) as exc:
                raise RetriableSinkError(f"S3: assembling {bundle} failed: {exc}") from exc

    def _upload_all(self, uploads: list[Upload]) -> None:
        if self._pool is None:
            raise RuntimeError("S3Sink is not open")
        results = list(self._pool.map(self._attempt, uploads))
        retriable = [exc for exc in results if exc is not None and is_retriable(exc)]
        for upload, exc in zip(uploads, results, strict=True):
            if exc is not None and not is_retriable(exc):
                self._report(upload.record, PoisonRecordError(
                    f"S3 rejected {upload.bucket}/{upload.key}: {exc}"))
        if retriable:
            raise RetriableSinkError(f"S3 unavailable ({len(retriable)} upload(s) failed): "
                                     f"{retriable[0]}") from retriable[0]

    def _assemble(self, key: str) -> None:
        try:
            self.assemble_bundle(key)
        except ClientError as exc:
            if not refuses_storage_class(exc) or self._classes_refused:
                raise
            self._refuse_classes(exc)
            self.assemble_bundle(key)

    def assemble_bundle(self, key: str) -> int:
        """Concatenate the stored parts of a bundle (in part order) into ``key``; returns bytes.

        Parts are gzip members of whole tar members, so their concatenation is the bundle.
        Streams part by part (multipart above the threshold): memory stays at one chunk.
        """
        prefix = parts_prefix(key)
        names: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.settings.s3.bucket, Prefix=prefix):
            names.extend(obj["Key"] for obj in page.get("Contents", []))
        names.sort()
        chunk = max(self.settings.s3.multipart_threshold_bytes, 8 * 1024 * 1024)
        writer = _ChunkedWriter(self.client, self.settings.s3.bucket, key, chunk,
                                {"ContentType": "application/gzip",
                                 "Metadata": {"parts": str(len(names))}, **self._class_of(key)})
        try:
            for name in names:
                body = self.client.get_object(Bucket=self.settings.s3.bucket, Key=name)["Body"]
                for block in body.iter_chunks(1024 * 1024):
                    writer.write(block)
            return writer.close()
        except BaseException:
            writer.abort()
            raise

    def _report(self, record: SinkRecord, exc: BaseException) -> None:
        if self._context is None:
            raise exc
        self._context.report(record, exc)

    def _refuse_classes(self, exc: Exception) -> None:
        self._classes_refused = True
        log.warning("s3://%s refuses the tiers' storage classes (%s): objects are written in the "
                    "standard class (docs/retention.md)", self.settings.s3.bucket, exc)

    def _class_of(self, key: str) -> dict[str, str]:
        """``StorageClass`` of an object's tier, unless standard or refused by the store."""
        cls = None if self._classes_refused else storage_class_for(key, self.settings)
        return {"StorageClass": cls} if cls else {}

    def _attempt(self, upload: Upload) -> BaseException | None:
        try:
            if upload.data is None:
                self._verify_claim_check(upload)
            else:
                self._put(upload)
        except (ClientError, BotoCoreError, OSError, PoisonRecordError) as exc:
            return exc
        return None

    def _verify_claim_check(self, upload: Upload) -> None:
        try:
            head = self.client.head_object(Bucket=upload.bucket, Key=upload.key)
        except ClientError as exc:
            if _status(exc) == 404:
                raise PoisonRecordError(
                    f"claim-check object s3://{upload.bucket}/{upload.key} does not exist") from exc
            raise
        if int(head.get("ContentLength", -1)) != upload.size:
            raise PoisonRecordError(
                f"claim-check object s3://{upload.bucket}/{upload.key} has "
                f"{head.get('ContentLength')} bytes, the record says {upload.size}")
        with self._counts_lock:
            self.claim_checked += 1

    def _already_stored(self, upload: Upload) -> bool:
        try:
            head = self.client.head_object(Bucket=upload.bucket, Key=upload.key)
        except ClientError as exc:
            if _status(exc) == 404:
                return False
            raise
        return bool(head.get("Metadata", {}).get("sha256") == upload.sha256
                    and int(head.get("ContentLength", -1)) == upload.size)

    def _send(self, upload: Upload, data: bytes, storage: dict[str, str]) -> None:
        extra = {"ContentType": upload.content_type, "Metadata": upload.metadata, **storage}
        if len(data) >= self.settings.s3.multipart_threshold_bytes:
            self.client.upload_fileobj(io.BytesIO(data), upload.bucket, upload.key, ExtraArgs=extra,
                                       Config=self._transfer)
        else:
            self.client.put_object(Bucket=upload.bucket, Key=upload.key, Body=data, **extra)

    def _put(self, upload: Upload) -> None:
        data = upload.data or b""
        if len(data) >= DEDUP_HEAD_ABOVE_BYTES and self._already_stored(upload):
            with self._counts_lock:
                self.skipped += 1
            return
        try:
            self._send(upload, data, self._class_of(upload.key))
        except (ClientError, S3UploadFailedError) as exc:
            if not refuses_storage_class(exc) or self._classes_refused:
                raise
            self._refuse_classes(exc)
            self._send(upload, data, {})
        with self._counts_lock:
            self.uploaded += 1
            self.bytes_uploaded += len(data)
