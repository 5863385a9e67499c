"""The OpenAPI 3 document of the ML-Dash API (``GET /openapi.json``).

Query parameters come from each route's :class:`~robostream.api.params.QueryParams` model (what
the route accepts, see :data:`QUERIES`), the robot call's body from
:class:`~robostream.api.rpc.RpcBody`; paths, responses and the ``{code, message}`` error shape
are written here. Tests check that the document names exactly the routes the app serves
and run schemathesis against it.
"""

from __future__ import annotations

from typing import Any

from robostream import __version__
from robostream.api.frames import FrameParams, FramesParams
from robostream.api.history import COLUMNS, TelemetryParams
from robostream.api.live import LiveParams
from robostream.api.params import ID_SCHEMA, NoParams, QueryParams
from robostream.api.rpc import RpcBody
from robostream.api.sessions import RobotsParams, SessionParams, SessionsParams
from robostream.api.stats import StatsParams

Schema = dict[str, Any]

FRAME_ID_EXAMPLE = "robot_001:session-1:front-1795600000000000"
METRIC_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]{0,127}$"

#: The query model of every route (the viewer page "/" reads its own ?robot=&session=&token=
#: in the browser: it is a page, not an API route, and takes any query).
QUERIES: dict[str, type[QueryParams]] = {
    "/healthz": NoParams, "/metrics": NoParams, "/openapi.json": NoParams, "/v1/live": LiveParams,
    "/v1/robots": RobotsParams, "/v1/sessions": SessionsParams, "/v1/sessions/{id}": SessionParams,
    "/v1/telemetry": TelemetryParams, "/v1/frames": FramesParams, "/v1/frames/{id}": FrameParams,
    "/v1/stats/{metric}": StatsParams, "/v1/robots/{id}/rpc": NoParams,
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _json(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _path_param(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


COMMON_ERRORS: dict[str, Schema] = {
    "400": _error("a parameter is missing, malformed or unknown (code names which problem)"),
    "401": _error("a read token is required (Authorization: Bearer <token>)"),
    "503": _error("a data store did not answer; retry later"),
}

_NUMBER_OR_NULL: Schema = {"type": "number", "nullable": True}

SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string", "example": "invalid_id"},
                       "message": {"type": "string"}},
    },
    "Robot": {
        "type": "object", "required": ["robot_id", "configured", "sessions"],
        "properties": {"robot_id": {"type": "string"}, "configured": {"type": "boolean"},
                       "cameras": {"type": "array", "items": {"type": "string"}},
                       "sessions": {"type": "integer"},
                       "last_seen": {"type": "string", "format": "date-time", "nullable": True}},
    },
    "Session": {
        "type": "object", "required": ["id", "robot_id", "session_id", "status", "stats"],
        "properties": {
            "id": {"type": "string", "description": "<robot_id>:<session_id>"},
            "robot_id": {"type": "string"}, "session_id": {"type": "string"},
            "status": {"type": "string", "enum": ["running", "ended", "unknown"]},
            "started_at": {"type": "string", "format": "date-time", "nullable": True},
            "ended_at": {"type": "string", "format": "date-time", "nullable": True},
            "last_seen": {"type": "string", "format": "date-time", "nullable": True},
            "stats": {"type": "object", "properties": {
                "total_telemetry_points": {"type": "integer"}, "total_frames": {"type": "integer"},
                "data_size_bytes": {"type": "integer"}}},
            "config": {"type": "object", "nullable": True},
            "end_stats": {"type": "object", "nullable": True},
            "cameras": {"type": "array", "items": {"type": "string"},
                        "description": "GET /v1/sessions/{id} only"},
            "metrics": {"type": "array", "items": {"type": "string"},
                        "description": "GET /v1/sessions/{id} only: metrics of the newest live point"},
        },
    },
    "Point": {
        "type": "object", "required": ["seq", "i", "ts_us", "values"],
        "description": "One sample: its record's seq, its index in the record, its time (µs since "
                       "the epoch, UTC) and the value of every metric measured then.",
        "properties": {"seq": {"type": "integer"}, "i": {"type": "integer"}, "ts_us": {"type": "integer"},
                       "values": {"type": "object", "additionalProperties": {"type": "number"},
                                  "example": {"pose.position.x": 0.41, "joints.angle.3": -1.2}}},
    },
    "AggregatedRow": {
        "type": "object", "required": ["ts_us", "end_us", "values", "min", "max", "count"],
        "description": "One bucket of whole aggregation windows: mean (values), min, max and count "
                       "per metric.",
        "properties": {"ts_us": {"type": "integer"}, "end_us": {"type": "integer"},
                       **{k: {"type": "object", "additionalProperties": {"type": "number"}}
                          for k in ("values", "min", "max", "count")}},
    },
    "StatsWindow": {
        "type": "object", "required": ["window_start_us", "window_end_us"],
        "properties": {
            "window_start_us": {"type": "integer"}, "window_end_us": {"type": "integer"},
            "window_start": {"type": "string", "format": "date-time"},
            "count": {"type": "integer", "nullable": True},
            **{k: _NUMBER_OR_NULL for k in ("min", "max", "mean", "stddev", "last")},
            "last_timestamp_us": {"type": "integer", "nullable": True},
            "unit": {"type": "string", "nullable": True},
        },
    },
    "Stats": {
        "type": "object", "required": ["metric", "resolution", "source", "windows"],
        "properties": {"robot_id": {"type": "string"}, "session_id": {"type": "string"},
                       "metric": {"type": "string"}, "resolution": {"type": "string"},
                       "source": {"type": "string", "enum": ["redis", "mongo"]},
                       "windows": {"type": "array", "items": _ref("StatsWindow")}},
    },
    "RpcReply": {
        "type": "object", "required": ["robot_id", "method", "correlation_id", "status", "elapsed_ms"],
        "description": "The robot's answer: status ok with its result, or error with its {code, message}.",
        "properties": {
            "robot_id": {"type": "string"}, "method": {"type": "string"},
            "correlation_id": {"type": "string", "description": "pairs the request and response records"},
            "status": {"type": "string", "enum": ["ok", "error"]},
            "result": {"description": "what the method returned (any JSON value)", "nullable": True},
            "error": {"allOf": [_ref("Error")], "nullable": True,
                      "description": "status error: the robot's code (e.g. unknown_method, invalid_params)"},
            "elapsed_ms": {"type": "number", "description": "from writing the request to the answer"},
        },
    },
    "Frame": {
        "type": "object", "required": ["id", "frame_id", "camera_id", "timestamp_us", "urls"],
        "properties": {
            "id": {"type": "string", "description": "<robot>:<session>:<camera>-<timestamp µs>"},
            "frame_id": {"type": "string"}, "robot_id": {"type": "string"},
            "session_id": {"type": "string"}, "camera_id": {"type": "string"},
            "timestamp": {"type": "string", "format": "date-time"}, "timestamp_us": {"type": "integer"},
            "metadata": {"type": "object"}, "kinds": {"type": "array", "items": {"type": "string"}},
            "tier": {"type": "string"},
            "urls": {"type": "object", "additionalProperties": {"type": "string", "format": "uri"},
                     "description": "presigned GET URL per image kind (rgb, depth, pointcloud)"},
            "url_names": {"type": "object", "additionalProperties": {"type": "string"},
                          "description": "which stored object each URL is (rgb, rgb_preview, thumbnail...)"},
            "expires_at": {"type": "string", "format": "date-time", "nullable": True},
            "href": {"type": "string"},
        },
    },
}


def _paths(limits: dict[str, int]) -> dict[str, Schema]:
    query = {path: model.openapi(limits) for path, model in QUERIES.items()}
    return {
        "/v1/live": {"get": {
            "summary": "Live view (WebSocket)",
            "description": (
                "A WebSocket. Messages (JSON text): hello; snapshot (the Redis ring of the newest "
                "points); then time_series, frame and stats messages as the sinks publish them; "
                "dropped {count, total} when this client fell behind (its bounded queue dropped the "
                "oldest messages). Browsers pass the token as ?access_token=."),
            "parameters": query["/v1/live"],
            "responses": {"101": {"description": "switching to the WebSocket protocol"},
                          **COMMON_ERRORS},
        }},
        "/v1/robots": {"get": {
            "summary": "Robots: configured ones and every robot with sessions",
            "parameters": query["/v1/robots"],
            "responses": {"200": _json("robots", {"type": "object", "required": ["robots"], "properties": {
                "robots": {"type": "array", "items": _ref("Robot")}}}), **COMMON_ERRORS},
        }},
        "/v1/sessions": {"get": {
            "summary": "Sessions, newest first",
            "parameters": query["/v1/sessions"],
            "responses": {"200": _json("sessions", {
                "type": "object", "required": ["sessions"],
                "properties": {"sessions": {"type": "array", "items": _ref("Session")}}}), **COMMON_ERRORS},
        }},
        "/v1/sessions/{id}": {"get": {
            "summary": "One session with its cameras and live metric names",
            "parameters": [_path_param("id", {"type": "string", "example": "robot_001:session-1"},
                                       "<robot_id>:<session_id>, or a session id with ?robot="),
                           *query["/v1/sessions/{id}"]],
            "responses": {"200": _json("the session", _ref("Session")),
                          "404": _error("no such session"),
                          "409": _error("the session id exists for several robots: give the robot"),
                          **COMMON_ERRORS},
        }},
        "/v1/telemetry": {"get": {
            "summary": "Telemetry of a time range, streamed (NDJSON or MessagePack)",
            "description": (
                "Rows in time order, streamed from MongoDB as they are read (chunked). Without "
                "max_points: every point. With max_points: pre-computed aggregation windows merged "
                "into buckets when their resolution is fine enough (X-Robostream-Source: "
                "aggregations), else one point per bucket (raw-decimated). A failure after the "
                "first bytes ends the stream with an {\"error\": {code, message}} row. Range: "
                "[from, to); by default the whole session."),
            "parameters": query["/v1/telemetry"],
            "responses": {
                "200": {
                    "description": "rows: points, or aggregated rows (see X-Robostream-Source)",
                    "headers": {
                        "X-Robostream-Source": {"schema": {"type": "string", "enum": [
                            "raw", "raw-decimated", "aggregations"]}},
                        "X-Robostream-Resolution": {"schema": {"type": "string"}},
                        "X-Robostream-Bucket-Us": {"schema": {"type": "integer"}}},
                    "content": {
                        "application/x-ndjson": {"schema": {"oneOf": [_ref("Point"), _ref("AggregatedRow")]}},
                        "application/msgpack": {"schema": {"type": "string", "format": "binary"}},
                        COLUMNS: {"schema": {"type": "string", "format": "binary"}}},
                },
                "404": _error("no such session"),
                "406": _error("the Accept header names neither NDJSON nor MessagePack"),
                **COMMON_ERRORS,
            },
        }},
        "/v1/frames": {"get": {
            "summary": "Frame metadata with presigned URLs (Redis first, then MongoDB + S3 presigning)",
            "parameters": query["/v1/frames"],
            "responses": {"200": _json("frames, oldest first (newest ones without from/to)", {
                "type": "object", "required": ["frames"], "properties": {
                    "robot_id": {"type": "string"}, "session_id": {"type": "string"},
                    "tier": {"type": "string"}, "source": {"type": "string"},
                    "frames": {"type": "array", "items": _ref("Frame")}}}), **COMMON_ERRORS},
        }},
        "/v1/frames/{id}": {"get": {
            "summary": "Redirect to the presigned URL of one frame's image",
            "parameters": [_path_param("id", {"type": "string", "example": FRAME_ID_EXAMPLE},
                                       "<robot_id>:<session_id>:<camera_id>-<timestamp µs>"),
                           *query["/v1/frames/{id}"]],
            "responses": {"307": {"description": "Location: the presigned URL (valid s3.presign_expiry_s)",
                                  "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}}},
                          "404": _error("no such frame, or no image of that kind"), **COMMON_ERRORS},
        }},
        "/v1/stats/{metric}": {"get": {
            "summary": "Aggregation windows of one metric (Redis first, MongoDB fallback)",
            "parameters": [_path_param("metric", {"type": "string", "pattern": METRIC_PATTERN,
                                                  "example": "pose.position.x"}, "metric name"),
                           *query["/v1/stats/{metric}"]],
            "responses": {"200": _json("windows, oldest first", _ref("Stats")), **COMMON_ERRORS},
        }},
        "/v1/robots/{id}/rpc": {"post": {
            "summary": "Call a method on a robot and wait for its answer (needs a write token)",
            "description": (
                "The request goes to the RPC requests topic; the gateway sends it over the robot's "
                "WebSocket (or holds it until the robot connects) and the robot's answer comes back "
                "through the responses topic. Authorization: Bearer <write token> (api.write_tokens; "
                "a read token is not enough)."),
            "security": [{"write": []}],
            "parameters": [_path_param("id", {**ID_SCHEMA, "example": "robot_001"}, "the robot to call"),
                           *query["/v1/robots/{id}/rpc"]],
            "requestBody": {"required": True, "content": {"application/json": {"schema": RpcBody.openapi()}}},
            "responses": {
                "200": _json("the robot answered (status ok or error)", _ref("RpcReply")),
                "400": _error("the robot id, the JSON body, the method or timeout_s is malformed"),
                "401": _error("a write token is required (Authorization: Bearer <write token>)"),
                "403": _error("the token is not a write token"),
                "404": _error("the gateway does not know this robot (unknown_robot)"),
                "413": _error("the body is too large"),
                "503": _error("Kafka, the schema registry or the gateway could not take the call; retry"),
                "504": _error("no answer before the deadline: the robot is offline, busy or answered late"),
            },
        }},
        "/healthz": {"get": {
            "summary": "Health of the API and its stores",
            "security": [], "parameters": query["/healthz"],
            "responses": {"200": _json("healthy", {"type": "object"}), "400": COMMON_ERRORS["400"],
                          "503": _json("a store is down", {"type": "object"})},
        }},
        "/metrics": {"get": {
            "summary": "Prometheus metrics (robostream_api_*: live fan-out, requests, query latency)",
            "security": [], "parameters": query["/metrics"],
            "responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {
                "schema": {"type": "string"}}}}, "400": COMMON_ERRORS["400"]},
        }},
        "/openapi.json": {"get": {"summary": "This document", "security": [],
                                  "parameters": query["/openapi.json"],
                                  "responses": {"200": _json("OpenAPI 3", {"type": "object"}),
                                                "400": COMMON_ERRORS["400"]}}},
        "/": {"get": {"summary": "The viewer page", "security": [],
                      "responses": {"200": {"description": "HTML", "content": {"text/html": {
                          "schema": {"type": "string"}}}}}}},
    }


def openapi_document(*, frames_limit: int = 1000, stats_limit: int = 10_000,
                     max_points: int = 1_000_000) -> Schema:
    """The whole document (limits as configured)."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "robostream ML-Dash API", "version": __version__,
                 "description": "Live and historical robot data: WebSocket live view, telemetry time "
                                "ranges, frames with presigned URLs, aggregations; calls to robots (RPC). "
                                "Errors are JSON {code, message}."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": _paths({"frames_limit": frames_limit, "stats_limit": stats_limit,
                         "max_points_limit": max_points}),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "a read token (api.read_tokens holds its sha256)"},
                "write": {"type": "http", "scheme": "bearer",
                          "description": "a write token (api.write_tokens holds its sha256): calls robots"}},
        },
    }
