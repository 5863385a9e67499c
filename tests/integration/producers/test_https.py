"""The blocking client over HTTPS streaming (TLS, self-signed certificate) and the JSON framing;
a wrong token is refused with a reason and the data waits in the spool."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from robostream.config import Settings
from robostream.schemas.examples import example_payload, time_series_payload
from robostream_sdk import ClientOptions, SyncRobotClient

from .conftest import TOKENS, GatewayRunner, landed


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "robostream-sdk-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "gw.crt", folder / "gw.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_gateway(sd_settings: Settings, tls_files: tuple[Path, Path]) -> Iterator[GatewayRunner]:
    cert, key = tls_files
    runner = GatewayRunner(sd_settings.model_copy(update={
        "gateway": sd_settings.gateway.model_copy(update={"tls_cert": cert, "tls_key": key})}))
    yield runner
    runner.close()


def options(tmp_path: Path, cert: Path, fmt: str = "msgpack") -> ClientOptions:
    return ClientOptions(transport="https", fmt=fmt, spool_dir=tmp_path,  # type: ignore[arg-type]
                         ssl_context=ssl.create_default_context(cafile=str(cert)), backoff_max_s=0.5)


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_streaming_over_https(sd_settings: Settings, tls_gateway: GatewayRunner, tls_files: tuple[Path, Path],
                              tmp_path: Path, fmt: str) -> None:
    assert tls_gateway.url.startswith("https://")
    with SyncRobotClient(tls_gateway.url, "robot_002", token=TOKENS["robot_002"],
                         options=options(tmp_path, tls_files[0], fmt)) as client:
        session = client.start_session()
        start = time.time()
        for i in range(300):
            client.send("time_series", time_series_payload(10), timestamp=start + i / 10)
        for data_type in ("images", "audio", "vuer_msg", "log"):
            client.send(data_type, example_payload(data_type))
        stats = client.end_session()
        counters = client.counters
    assert stats.drained and stats.records == 304 and stats.last_seq == 303
    assert counters.acked == counters.created == 3004 and counters.lost == 0
    kafka = landed(sd_settings)
    assert kafka.missing(f"robot_002/{session}", 303) == []


def test_a_wrong_token_is_refused_and_the_data_waits(tls_gateway: GatewayRunner, tls_files: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    client = SyncRobotClient(tls_gateway.url, "robot_003", token="not-the-token",
                             options=options(tmp_path, tls_files[0]))
    client.start_session()
    client.send("log", example_payload("log"))
    assert not client.flush(timeout_s=2.0)
    # It retries (backoff up to 0.5 s): its state cycles connecting -> refused -> backing_off.
    deadline = time.monotonic() + 5.0
    while client.client.state not in ("refused", "backing_off") and time.monotonic() < deadline:
        time.sleep(0.005)
    assert client.client.state in ("refused", "backing_off") and client.counters.connects == 0
    assert "401" in (client.client.last_error or "")
    assert client.counters.spooled == 1 and client.counters.lost == 0
    client.close(timeout_s=0.1)
