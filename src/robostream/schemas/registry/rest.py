"""The Confluent Schema Registry REST API on aiohttp: routes, query parsing, error bodies."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from robostream.schemas.registry.errors import RegistryError, bad_request, invalid_mode
from robostream.schemas.registry.metrics import RegistryMetrics
from robostream.schemas.registry.service import RegistryService

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
MAX_BODY_BYTES = 16 * 1024 * 1024
SERVICE = web.AppKey("service", RegistryService)
METRICS = web.AppKey("metrics", RegistryMetrics)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def reply(data: Any, status: int = 200) -> web.Response:
    """A JSON response with the registry's content type."""
    return web.Response(
        text=json.dumps(data, ensure_ascii=False), status=status, content_type=CONTENT_TYPE
    )


@web.middleware
async def error_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into Confluent's ``{"error_code", "message"}`` body."""
    try:
        return await handler(request)
    except RegistryError as exc:
        return reply(exc.body(), exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return reply({"error_code": exc.status, "message": f"HTTP {exc.status} {exc.reason}"},
                     exc.status)
    except Exception:
        log.exception("schema registry: %s %s failed", request.method, request.path)
        return reply({"error_code": 50001, "message": "Error in the backend data store"}, 500)


# --- request parsing -------------------------------------------------------------------------

def _service(request: web.Request) -> RegistryService:
    return request.app[SERVICE]


def _flag(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    return default if value is None else value.strip().lower() in ("true", "1", "yes")


def _int(request: web.Request, name: str, default: int) -> int:
    value = request.query.get(name)
    try:
        return default if value is None else int(value)
    except ValueError:
        raise bad_request(f"Query parameter '{name}' must be an integer") from None


def _paging(request: web.Request) -> dict[str, int]:
    return {"offset": _int(request, "offset", 0), "limit": _int(request, "limit", -1)}


def _schema_id(request: web.Request) -> int:
    return int(request.match_info["id"])


async def _body(request: web.Request) -> Any:
    text = await request.text()
    try:
        return json.loads(text) if text.strip() else None
    except ValueError as exc:
        raise bad_request(f"Malformed JSON body: {exc}") from None


# --- subjects --------------------------------------------------------------------------------

async def root(request: web.Request) -> web.Response:
    return reply({})


async def list_subjects(request: web.Request) -> web.Response:
    return reply(_service(request).subjects(
        prefix=request.query.get("subjectPrefix"),
        deleted=_flag(request, "deleted"),
        deleted_only=_flag(request, "deleted_only"),
        **_paging(request),
    ))


async def list_versions(request: web.Request) -> web.Response:
    return reply(_service(request).versions(
        request.match_info["subject"],
        deleted=_flag(request, "deleted"),
        deleted_only=_flag(request, "deleted_only"),
        **_paging(request),
    ))


async def register(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    return reply(await _service(request).register(subject, await _body(request)))


async def get_version(request: web.Request) -> web.Response:
    subject, version = request.match_info["subject"], request.match_info["version"]
    return reply(_service(request).version(subject, version, _flag(request, "deleted")))


async def get_version_schema(request: web.Request) -> web.Response:
    subject, version = request.match_info["subject"], request.match_info["version"]
    text = _service(request).version_schema(subject, version, _flag(request, "deleted"))
    return web.Response(text=text, content_type=CONTENT_TYPE)


async def referenced_by(request: web.Request) -> web.Response:
    subject, version = request.match_info["subject"], request.match_info["version"]
    return reply(_service(request).referenced_by(subject, version))


async def lookup(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    body = await _body(request)
    return reply(_service(request).lookup(subject, body, _flag(request, "deleted")))


async def delete_subject(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    return reply(await _service(request).delete_subject(subject, _flag(request, "permanent")))


async def delete_version(request: web.Request) -> web.Response:
    subject, version = request.match_info["subject"], request.match_info["version"]
    deleted = await _service(request).delete_version(
        subject, version, _flag(request, "permanent")
    )
    return reply(deleted)


# --- schemas by id ---------------------------------------------------------------------------

async def schema_by_id(request: web.Request) -> web.Response:
    return reply(_service(request).schema_by_id(_schema_id(request)))


async def schema_text_by_id(request: web.Request) -> web.Response:
    text = _service(request).schema_text_by_id(_schema_id(request))
    return web.Response(text=text, content_type=CONTENT_TYPE)


async def id_versions(request: web.Request) -> web.Response:
    return reply(_service(request).id_versions(
        _schema_id(request), request.query.get("subject"), _flag(request, "deleted"),
        **_paging(request),
    ))


async def id_subjects(request: web.Request) -> web.Response:
    return reply(_service(request).id_subjects(
        _schema_id(request), request.query.get("subject"), _flag(request, "deleted"),
        **_paging(request),
    ))


async def schema_types(request: web.Request) -> web.Response:
    return reply(RegistryService.schema_types())


# --- compatibility and config ----------------------------------------------------------------

async def test_compatibility(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    version = request.match_info.get("version")
    return reply(_service(request).test_compatibility(
        subject, version, await _body(request), verbose=_flag(request, "verbose")
    ))


async def get_config(request: web.Request) -> web.Response:
    subject = request.match_info.get("subject")
    return reply(_service(request).get_config(subject, _flag(request, "defaultToGlobal")))


async def put_config(request: web.Request) -> web.Response:
    subject = request.match_info.get("subject")
    return reply(await _service(request).set_config(subject, await _body(request)))


async def delete_config(request: web.Request) -> web.Response:
    return reply(await _service(request).delete_config(request.match_info.get("subject")))


async def get_mode(request: web.Request) -> web.Response:
    return reply({"mode": "READWRITE"})


async def put_mode(request: web.Request) -> web.Response:
    body = await _body(request)
    mode = body.get("mode") if isinstance(body, dict) else None
    if not isinstance(mode, str) or mode.upper() != "READWRITE":
        raise invalid_mode(str(mode))
    return reply({"mode": "READWRITE"})


async def contexts(request: web.Request) -> web.Response:
    return reply(["."])


SUBJECT = "/subjects/{subject}"
VERSION = SUBJECT + "/versions/{version}"
SCHEMA_ID = "/schemas/ids/{id:\\d+}"


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus metrics (``robostream_schema_registry_*``)."""
    exported = request.app[METRICS]
    return web.Response(body=exported.render(), headers={"Content-Type": exported.content_type})


def build_app(service: RegistryService) -> web.Application:
    """The aiohttp application serving ``service`` (and its Prometheus metrics)."""
    exported = RegistryMetrics(service.state)
    app = web.Application(middlewares=[exported.middleware, error_bodies], client_max_size=MAX_BODY_BYTES)
    app[SERVICE] = service
    app[METRICS] = exported
    app.router.add_routes([
        web.get("/", root),
        web.get("/subjects", list_subjects),
        web.post(SUBJECT, lookup),
        web.delete(SUBJECT, delete_subject),
        web.get(SUBJECT + "/versions", list_versions),
        web.post(SUBJECT + "/versions", register),
        web.get(VERSION, get_version),
        web.delete(VERSION, delete_version),
        web.get(VERSION + "/schema", get_version_schema),
        web.get(VERSION + "/referencedby", referenced_by),
        web.get(SCHEMA_ID, schema_by_id),
        web.get(SCHEMA_ID + "/schema", schema_text_by_id),
        web.get(SCHEMA_ID + "/versions", id_versions),
        web.get(SCHEMA_ID + "/subjects", id_subjects),
        web.get("/schemas/types", schema_types),
        web.post("/compatibility" + SUBJECT + "/versions", test_compatibility),
        web.post("/compatibility" + VERSION, test_compatibility),
        web.get("/config", get_config),
        web.put("/config", put_config),
        web.delete("/config", delete_config),
        web.get("/config/{subject}", get_config),
        web.put("/config/{subject}", put_config),
        web.delete("/config/{subject}", delete_config),
        web.get("/mode", get_mode),
        web.put("/mode", put_mode),
        web.get("/mode/{subject}", get_mode),
        web.put("/mode/{subject}", put_mode),
        web.get("/contexts", contexts),
        web.get("/metrics", metrics),
    ])
    return app
