"""SeaweedFS S3 with auth on: objects, multipart uploads and presigned URLs."""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import pytest

from robostream.api.stores import Presigner
from robostream.config import Settings
from robostream.sinks.s3 import s3_client


def test_put_get_and_multipart(s3: Any, settings: Settings, unique: str) -> None:
    bucket = settings.s3.bucket
    s3.put_object(Bucket=bucket, Key=f"it/{unique}/small.txt", Body=b"hello robot")
    assert s3.get_object(Bucket=bucket, Key=f"it/{unique}/small.txt")["Body"].read() == b"hello robot"

    key = f"it/{unique}/big.bin"
    part = 5 * 1024 * 1024
    blob = os.urandom(20 * 1024 * 1024)
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)
    parts = []
    for n, start in enumerate(range(0, len(blob), part), start=1):
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=n,
                           Body=blob[start:start + part])
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"],
                                 MultipartUpload={"Parts": parts})
    got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(got).digest() == hashlib.sha256(blob).digest()
    assert len(parts) == 4


def test_presigned_get_works_and_tampered_url_is_refused(s3: Any, settings: Settings,
                                                          unique: str) -> None:
    key = f"it/{unique}/frame.jpg"
    s3.put_object(Bucket=settings.s3.bucket, Key=key, Body=b"\xff\xd8jpeg")
    url = s3_client(settings).generate_presigned_url(  # how the sinks and the API sign
        "get_object", Params={"Bucket": settings.s3.bucket, "Key": key}, ExpiresIn=3600)
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and "X-Amz-Expires=3600" in url  # SigV4
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == b"\xff\xd8jpeg"

    tampered = url.replace("frame.jpg", "frame.jpeg")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(tampered, timeout=10)
    assert refused.value.code == 403


def test_expired_sigv4_url_is_refused(s3: Any, settings: Settings, unique: str) -> None:
    """SeaweedFS checks X-Amz-Date + X-Amz-Expires: the same URL works, then is a 403."""
    key = f"it/{unique}/short.jpg"
    s3.put_object(Bucket=settings.s3.bucket, Key=key, Body=b"\xff\xd8short")
    url = s3_client(settings).generate_presigned_url(
        "get_object", Params={"Bucket": settings.s3.bucket, "Key": key}, ExpiresIn=2)
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == b"\xff\xd8short"
    time.sleep(3.5)
    with pytest.raises(urllib.error.HTTPError) as expired:
        urllib.request.urlopen(url, timeout=10)
    assert expired.value.code == 403


def test_url_signed_for_the_public_endpoint_verifies(s3: Any, settings: Settings, unique: str) -> None:
    """The services reach S3 at 127.0.0.1:<port>, browsers at localhost:<port> (public_endpoint).

    SigV4 signs the Host header: the API's URL names localhost and works there, while the same
    object signed for 127.0.0.1 and fetched through localhost is refused.
    """
    key = f"it/{unique}/public.jpg"
    s3.put_object(Bucket=settings.s3.bucket, Key=key, Body=b"\xff\xd8public")
    internal = urlsplit(settings.s3.endpoint)
    public = f"http://localhost:{internal.port}"
    browser_facing = settings.model_copy(
        update={"s3": settings.s3.model_copy(update={"public_endpoint": public})})
    url = Presigner(browser_facing).get_url(settings.s3.bucket, key)  # what the API hands out
    assert url.startswith(f"{public}/{settings.s3.bucket}/") and "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == b"\xff\xd8public"

    signed_internally = Presigner(settings).get_url(settings.s3.bucket, key)
    assert urlsplit(signed_internally).netloc == internal.netloc
    with pytest.raises(urllib.error.HTTPError) as wrong_host:
        urllib.request.urlopen(signed_internally.replace(internal.netloc, f"localhost:{internal.port}", 1),
                               timeout=10)
    assert wrong_host.value.code == 403
