"""The ingest gateway: robot frames in (WebSocket or HTTPS streaming), Kafka records out.

Auth per robot, validation against the wire contract, one topic per data type, acks only after
Kafka's delivery reports, nacks + DLQ for bad input, claim-check of large blobs to S3, bounded
in-flight bytes with ``slow_down`` / HTTP 429, RPC to connected robots, graceful shutdown.
The wire protocol for robot developers is ``docs/gateway.md``.
"""

from robostream.gateway.app import Gateway, GatewayStartError, serve_gateway
from robostream.gateway.auth import AuthError, Identity, TokenStore, authenticate, hash_token
from robostream.gateway.framing import MSGPACK_STREAM, NDJSON, encode_length_prefixed
from robostream.gateway.protocol import CloseCode, GatewayCode

__all__ = [
    "MSGPACK_STREAM",
    "NDJSON",
    "AuthError",
    "CloseCode",
    "Gateway",
    "GatewayCode",
    "GatewayStartError",
    "Identity",
    "TokenStore",
    "authenticate",
    "encode_length_prefixed",
    "hash_token",
    "serve_gateway",
]
