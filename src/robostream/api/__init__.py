"""The ML-Dash API (``robostream api``): live WebSocket, history, frames, stats and a viewer.

It only reads what the sinks wrote: Redis (live ring, pub/sub, frame and stats caches), MongoDB
(sessions, telemetry, frames_metadata, aggregations) and S3 (through presigned URLs). See
docs/api.md and ``GET /openapi.json``.
"""

from robostream.api.app import ApiServer, create_app, serve_api
from robostream.api.auth import hash_token
from robostream.api.openapi import openapi_document

__all__ = ["ApiServer", "create_app", "hash_token", "openapi_document", "serve_api"]
