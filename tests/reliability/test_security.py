"""Security on the reliability stack: robot tokens, API read tokens, TLS, presigned URL expiry,
per-robot limits with a clear error, and no secret in any server's log."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import pytest

from robostream.config import Settings
from robostream.sinks.s3 import s3_client
from robostream.stack.servers import Server
from robostream_sdk import ClientOptions, RobotClient
from tests.reliability.badinput import envelope, mp
from tests.reliability.report import FIGURES
from tests.reliability.stack import (
    ENV,
    PORT,
    READ_TOKEN,
    STATE_DIR,
    TOKENS,
    Gateway,
    ReliabilityStack,
)

TLS_PORT = PORT + 190


def passed(check: str, result: str) -> None:
    FIGURES.security.append({"check": check, "result": result})


def url(settings: Settings, path: str) -> str:
    return f"http://127.0.0.1:{settings.gateway.port}{path}"


async def replies_to(settings: Settings, robot: str, frame: bytes) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {TOKENS[robot]}", "X-Robot-Id": robot}
    ws_url = f"ws://127.0.0.1:{settings.gateway.port}/v1/stream?format=msgpack"
    out: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, headers=headers) as ws:
        await ws.send_bytes(frame)
        while not out or out[-1]["type"] != "ack":
            out.append(msgpack.unpackb((await ws.receive(timeout=30)).data, raw=False))
    return out


async def test_a_robot_cannot_write_another_robots_id(
    rel_stack: ReliabilityStack, rel_settings: Settings
) -> None:
    frame = mp([envelope("log", 0, robot_id="robot_002", session_id="s-spoof"),
                envelope("log", 1, robot_id="robot_001", session_id="s-spoof")])
    replies = await replies_to(rel_settings, "robot_001", frame)
    nack, ack = replies
    assert nack["code"] == "forbidden_robot_id" and nack["index"] == 0 and nack["dlq"]
    assert "may not write robot_id robot_002" in nack["message"]
    assert ack["count"] == 1  # its own envelope still lands
    passed("robot_001's token writing robot_id robot_002",
           f"nack `forbidden_robot_id` ({nack['message']!r}), copy on the DLQ")


@pytest.mark.parametrize(("headers", "why"), [
    ({}, "no token"),
    ({"Authorization": "Bearer wrong-token"}, "a wrong token"),
    ({"Authorization": f"Bearer {TOKENS['robot_001']}", "X-Robot-Id": "robot_002"},
     "robot_001's token claiming robot_002"),
])
async def test_robots_without_their_own_token_get_401(
    rel_stack: ReliabilityStack, rel_settings: Settings, headers: dict[str, str], why: str
) -> None:
    async with aiohttp.ClientSession() as session, session.post(
            url(rel_settings, "/v1/ingest"), data=b"",
            headers={"X-Robot-Id": "robot_001", **headers,
                     "Content-Type": "application/vnd.robostream.msgpack-stream"}) as resp:
        body = await resp.json()
    assert resp.status == 401 and body["code"] == "unauthorized" and len(body["message"]) > 20
    passed(f"gateway, {why}", f"HTTP 401 `unauthorized`: {body['message']!r}")


async def test_a_robot_over_its_connection_limit_gets_429_with_a_sentence(
    rel_stack: ReliabilityStack, rel_settings: Settings
) -> None:
    headers = {"Authorization": f"Bearer {TOKENS['robot_003']}", "X-Robot-Id": "robot_003"}
    limit = rel_settings.gateway.max_connections_per_robot
    ws_url = f"ws://127.0.0.1:{rel_settings.gateway.port}/v1/stream"
    async with aiohttp.ClientSession() as session:
        held = [await session.ws_connect(ws_url, headers=headers) for _ in range(limit)]
        async with session.post(url(rel_settings, "/v1/ingest"), data=b"", headers={
                **headers, "Content-Type": "application/vnd.robostream.msgpack-stream"}) as resp:
            body = await resp.json()
        for ws in held:
            await ws.close()
    assert resp.status == 429 and body["code"] == "too_many_connections"
    assert "max_connections_per_robot" in body["message"] and resp.headers.get("Retry-After")
    passed(f"robot_003 opening connection {limit + 1} (limit {limit} per robot)",
           f"HTTP 429 `too_many_connections`, Retry-After: {body['message']!r}")


def api_get(settings: Settings, path: str, token: str | None) -> tuple[int, dict[str, Any]]:
    import json

    request = urllib.request.Request(f"http://127.0.0.1:{settings.api.port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_api_reads_only_with_a_read_token(rel_stack: ReliabilityStack, rel_settings: Settings) -> None:
    rel_stack.up(["api"])
    status, body = api_get(rel_settings, "/v1/sessions", None)
    assert status == 401 and "read token" in str(body), body
    assert api_get(rel_settings, "/v1/sessions", "not-the-token")[0] == 401
    ok, sessions = api_get(rel_settings, "/v1/sessions", READ_TOKEN)
    assert ok == 200, sessions
    passed("ML-Dash API without / with a wrong / with the read token",
           f"401 ({body.get('message', body)!r}) / 401 / 200")


def self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "robostream-reliability")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "gateway.pem", folder / "gateway-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class TlsGateway(Gateway):
    """A second gateway subprocess serving wss:// and https:// only."""

    name = "gateway-tls"

    @property
    def port(self) -> int:
        return TLS_PORT

    def env(self) -> dict[str, str]:
        folder = STATE_DIR / "tls"
        return {**super().env(), "ROBOSTREAM_GATEWAY__PORT": str(TLS_PORT),
                "ROBOSTREAM_GATEWAY__TLS_CERT": str(folder / "gateway.pem"),
                "ROBOSTREAM_GATEWAY__TLS_KEY": str(folder / "gateway-key.pem")}

    def healthy(self) -> bool:
        context = ssl.create_default_context(cafile=str(STATE_DIR / "tls" / "gateway.pem"))
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{TLS_PORT}/healthz", timeout=1,
                                        context=context) as resp:
                return bool(resp.status == 200)
        except (OSError, ValueError):
            return False


async def test_the_gateway_serves_tls_and_robots_stream_over_wss(
    rel_stack: ReliabilityStack, rel_settings: Settings
) -> None:
    cert, _ = self_signed(STATE_DIR / "tls")
    server: Server = TlsGateway(rel_settings)
    rel_stack.servers.append(server)
    try:
        rel_stack.up([server.name])
        context = ssl.create_default_context(cafile=str(cert))
        options = ClientOptions(spool_dir=STATE_DIR / "spool-tls", ssl_context=context)
        client = RobotClient(f"https://127.0.0.1:{TLS_PORT}", "robot_002", token=TOKENS["robot_002"],
                             options=options)
        async with client:
            await client.start_session()
            await client.send("log", {"level": "info", "logger": "tls", "message": "over wss"})
            assert await client.flush(timeout_s=30)
            assert client.counters.acked == 1
        with pytest.raises(OSError):  # no plain HTTP on the TLS port
            await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{TLS_PORT}/healthz",
                                    timeout=3)
    finally:
        rel_stack.down([server.name])
        rel_stack.servers.remove(server)
    passed("gateway with gateway.tls_cert/tls_key", "robot streams over wss:// (CA-verified), plain "
           "http:// on the TLS port fails")


def test_presigned_urls_expire_on_seaweedfs_with_auth_on(
    rel_stack: ReliabilityStack, rel_settings: Settings
) -> None:
    s3cfg = rel_settings.s3
    s3 = s3_client(rel_settings)  # how the sinks and the API sign: SigV4
    key = "raw/robot_001/s-presign/frames/front/1_rgb.jpg"
    s3.put_object(Bucket=s3cfg.bucket, Key=key, Body=b"\xff\xd8frame")
    signed = s3.generate_presigned_url("get_object", Params={"Bucket": s3cfg.bucket, "Key": key},
                                       ExpiresIn=2)
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in signed and "X-Amz-Expires=2" in signed
    with urllib.request.urlopen(signed, timeout=10) as resp:
        assert resp.read() == b"\xff\xd8frame"
    anonymous = f"{s3cfg.endpoint}/{s3cfg.bucket}/{key}"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(anonymous, timeout=10)
    time.sleep(4)
    with pytest.raises(urllib.error.HTTPError) as expired:
        urllib.request.urlopen(signed, timeout=10)
    assert refused.value.code == 403 and expired.value.code == 403
    passed("S3 presigned GET (2 s expiry) on SeaweedFS with auth on",
           "200 at once, 403 after expiry; unsigned GET 403")


def test_no_secret_appears_in_any_log(rel_stack: ReliabilityStack, rel_settings: Settings) -> None:
    secrets = {**{f"token of {r}": t for r, t in TOKENS.items()}, "API read token": READ_TOKEN,
               "S3 secret key": rel_settings.s3.secret_key.get_secret_value()}
    logs = sorted((STATE_DIR / "logs").glob("*.log"))
    assert len(logs) >= 8
    found = [f"{what} in {log.name}" for log in logs for what, secret in secrets.items()
             if secret.encode() in log.read_bytes()]
    assert found == [], found
    assert ENV["ROBOSTREAM_AUTH__TOKENS_FILE"]  # the tokens file holds hashes only
    assert not any(t in Path(ENV["ROBOSTREAM_AUTH__TOKENS_FILE"]).read_text() for t in TOKENS.values())
    passed(f"robot tokens, API read token, S3 secret in {len(logs)} server logs", "absent")
