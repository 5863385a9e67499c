"""SeaweedFS S3 with auth on: objects, multipart uploads and presigned URLs."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from typing import Any

import pytest

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
