"""The worker's REST API, shaped like Kafka Connect's (aiohttp).

=========================================  ===================================================
``GET  /``                                  worker version and id
``GET  /connectors``                        names; ``?expand=status`` / ``?expand=info`` maps
``GET  /connectors/{name}``                 name, config, tasks, type
``GET  /connectors/{name}/config``          the connector's configuration
``GET  /connectors/{name}/status``          connector and task states (traces, lag, metrics)
``GET  /connectors/{name}/tasks``           task ids and configs
``GET  /connectors/{name}/tasks/{id}/status``  one task's status
``PUT  /connectors/{name}/pause``           202; tasks stop consuming (state PAUSED)
``PUT  /connectors/{name}/resume``          202; back to RUNNING
``POST /connectors/{name}/restart``         ``?includeTasks=true&onlyFailed=true`` like Connect
``POST /connectors/{name}/tasks/{id}/restart``  204
``GET  /metrics``                           Prometheus metrics (``robostream_sinks_*``)
=========================================  ===================================================

Errors are ``{"error_code": 404, "message": "..."}``, as Kafka Connect answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from robostream import __version__
from robostream.sinks.connector import Connector
from robostream.sinks.metrics import CONTENT_TYPE, render, sink_registry
from robostream.sinks.status import State

CONNECTORS_KEY: web.AppKey[Mapping[str, Connector]] = web.AppKey("connectors", Mapping)
WORKER_KEY: web.AppKey[dict[str, str]] = web.AppKey("worker", dict)
METRICS_KEY = web.AppKey("metrics", CollectorRegistry)


def _connector(request: web.Request) -> Connector:
    name = request.match_info["name"]
    connector = request.app[CONNECTORS_KEY].get(name)
    if connector is None:
        raise web.HTTPNotFound(text=f'{{"error_code": 404, "message": "Connector {name} not found"}}',
                               content_type="application/json")
    return connector


def _task_id(request: web.Request, connector: Connector) -> int:
    raw = request.match_info["task"]
    if not raw.isdigit() or int(raw) >= len(connector.tasks):
        raise web.HTTPNotFound(
            text=f'{{"error_code": 404, "message": "Task {connector.name}-{raw} not found"}}',
            content_type="application/json")
    return int(raw)


async def root(request: web.Request) -> web.Response:
    return web.json_response({"version": __version__, "worker_id": request.app[WORKER_KEY]["id"],
                              "commit": None, "kafka_cluster_id": None})


async def list_connectors(request: web.Request) -> web.Response:
    connectors = request.app[CONNECTORS_KEY]
    expand = request.query.getall("expand", [])
    if not expand:
        return web.json_response(sorted(connectors))
    out: dict[str, Any] = {}
    for name, connector in sorted(connectors.items()):
        entry: dict[str, Any] = {}
        if "status" in expand:
            entry["status"] = connector.status()
        if "info" in expand:
            entry["info"] = connector.info()
        out[name] = entry
    return web.json_response(out)


async def connector_info(request: web.Request) -> web.Response:
    return web.json_response(_connector(request).info())


async def connector_config(request: web.Request) -> web.Response:
    return web.json_response(_connector(request).info()["config"])


async def connector_status(request: web.Request) -> web.Response:
    return web.json_response(_connector(request).status())


async def connector_tasks(request: web.Request) -> web.Response:
    connector = _connector(request)
    config = connector.info()["config"]
    return web.json_response([{"id": {"connector": connector.name, "task": i}, "config": config}
                              for i in range(connector.config.tasks)])


async def task_status(request: web.Request) -> web.Response:
    connector = _connector(request)
    return web.json_response(connector.tasks[_task_id(request, connector)].status.snapshot())


async def pause(request: web.Request) -> web.Response:
    _connector(request).pause()
    return web.Response(status=202)


async def resume(request: web.Request) -> web.Response:
    _connector(request).resume()
    return web.Response(status=202)


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() == "true"


async def restart_connector(request: web.Request) -> web.Response:
    connector = _connector(request)
    if not _flag(request, "includeTasks"):
        return web.Response(status=204)  # the connector object itself has nothing to restart
    only_failed = _flag(request, "onlyFailed")
    chosen = [t.task_id for t in connector.tasks
              if not only_failed or t.status.snapshot()["state"] == State.FAILED.value]
    loop = asyncio.get_running_loop()
    for task_id in chosen:
        await loop.run_in_executor(None, connector.restart_task, task_id)
    return web.json_response(connector.status(), status=202)


async def restart_task(request: web.Request) -> web.Response:
    connector = _connector(request)
    task_id = _task_id(request, connector)
    await asyncio.get_running_loop().run_in_executor(None, connector.restart_task, task_id)
    return web.Response(status=204)


async def metrics(request: web.Request) -> web.Response:
    body = await asyncio.get_running_loop().run_in_executor(None, render, request.app[METRICS_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def build_app(connectors: Mapping[str, Connector], worker_id: str) -> web.Application:
    """The aiohttp application serving ``connectors``."""
    app = web.Application()
    app[CONNECTORS_KEY] = connectors
    app[WORKER_KEY] = {"id": worker_id}
    app[METRICS_KEY] = sink_registry(connectors)
    app.router.add_get("/", root)
    app.router.add_get("/connectors", list_connectors)
    app.router.add_get("/connectors/{name}", connector_info)
    app.router.add_get("/connectors/{name}/config", connector_config)
    app.router.add_get("/connectors/{name}/status", connector_status)
    app.router.add_get("/connectors/{name}/tasks", connector_tasks)
    app.router.add_get("/connectors/{name}/tasks/{task}/status", task_status)
    app.router.add_put("/connectors/{name}/pause", pause)
    app.router.add_put("/connectors/{name}/resume", resume)
    app.router.add_post("/connectors/{name}/restart", restart_connector)
    app.router.add_post("/connectors/{name}/tasks/{task}/restart", restart_task)
    app.router.add_get("/metrics", metrics)
    return app
