"""A 5 MB file goes to S3 by claim-check; the topic gets the reference; the checksums match."""

from __future__ import annotations

import hashlib
import os
import ssl

import boto3

from robostream.config import Settings
from robostream.schemas import ConfluentSchemaResolver, DataType, build_envelope, decode_record
from robostream.topics import topic_for

from .clients import ROBOTS, WsRobot, read_topics, session, value_of, with_session
from .conftest import RunningGateway

SIZE = 5 * 1024 * 1024 + 123  # above s3.multipart_threshold_bytes (5 MiB in these tests): multipart


def test_large_file_is_claim_checked_to_s3(
    gateway: RunningGateway, gw_settings: Settings, registry_url: str, client_ssl: ssl.SSLContext
) -> None:
    session_id = session()
    content = os.urandom(SIZE)
    envelope = build_envelope(
        DataType.FILE,
        {"name": "episode.bin", "blob": {"format": "application/octet-stream", "content": content}},
        robot_id="robot_a",
        session_id=session_id,
        seq=7,
    )
    small = build_envelope(
        DataType.FILE,
        {"name": "small.bin", "blob": {"format": "bin", "content": b"tiny"}},
        robot_id="robot_a",
        session_id=session_id,
        seq=8,
    )

    robot = WsRobot(gateway.ws_url, ROBOTS["robot_a"], client_ssl)
    try:
        robot.send_batch([envelope, small])
        ack, nacks = robot.ack(timeout=60)
    finally:
        robot.close()
    assert (ack["seq"], ack["count"], nacks) == (8, 2, [])

    mine = with_session(session_id)
    records = read_topics(
        gw_settings.kafka.bootstrap,
        topic_for(DataType.FILE, gw_settings),
        lambda got: sum(map(mine, got)) >= 2,
    )
    resolver = ConfluentSchemaResolver(registry_url)
    on_topic = {e.seq: e for e in (decode_record(value_of(m), resolver) for m in records if mine(m))}
    blob = on_topic[7].payload["blob"]
    ref = blob["content"]
    digest = hashlib.sha256(content).hexdigest()
    assert ref == {"bucket": gw_settings.s3.bucket, "key": ref["key"], "size": SIZE, "sha256": digest}
    assert (blob["size_bytes"], blob["sha256"]) == (SIZE, digest)
    assert ref["key"].startswith(f"raw/robot_a/{session_id}/blobs/file/")
    assert on_topic[8].payload["blob"]["content"] == b"tiny"  # small blobs stay inline

    s3 = boto3.client(
        "s3",
        endpoint_url=gw_settings.s3.endpoint,
        region_name=gw_settings.s3.region,
        aws_access_key_id=gw_settings.s3.access_key,
        aws_secret_access_key=gw_settings.s3.secret_key.get_secret_value(),
    )
    stored = s3.get_object(Bucket=ref["bucket"], Key=ref["key"])
    body = stored["Body"].read()
    assert hashlib.sha256(body).hexdigest() == digest == stored["Metadata"]["sha256"]
    assert len(body) == SIZE
    assert "-" in stored["ETag"]  # a multipart upload's ETag: <md5 of part md5s>-<parts>
