"""Errors as JSON ``{code, message}``: every failure of the API, whatever raised it.

Handlers raise :class:`ApiError`; :func:`error_middleware` turns it, aiohttp's own HTTP errors
(404 of unknown routes, 405) and store outages into that shape. An unexpected exception is
logged with its traceback and answered ``500 internal_error`` without details.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from robostream.errors import RobostreamError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: aiohttp's HTTP statuses -> our codes.
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    503: "unavailable",
}


class ApiError(RobostreamError):
    """A failure to answer with ``status`` and ``{code, message}`` (message safe to show)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def bad_request(code: str, message: str) -> ApiError:
    """A 400 for a query parameter that is missing or malformed."""
    return ApiError(400, code, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    """The JSON error body every route answers with."""
    return web.Response(status=status, body=orjson.dumps({"code": code, "message": message}),
                        content_type="application/json", headers=headers)


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    code = _STATUS_CODES.get(exc.status, "http_error")
    message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "www-authenticate")}
    return error_response(exc.status, code, message or exc.reason, headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error as ``{code, message}`` JSON (once a stream started, just stop it)."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like are answers, not errors
        return _from_http_exception(exc)
    except (PyMongoError, RedisError, OSError) as exc:
        log.warning("%s %s: store unavailable: %s: %s", request.method, request.path,
                    type(exc).__name__, exc)
        return error_response(503, "store_unavailable",
                              f"a data store did not answer ({type(exc).__name__}); retry later",
                              {"Retry-After": "1"})
    except Exception:
        log.exception("%s %s failed", request.method, request.path_qs)
        return error_response(500, "internal_error", "the server failed to answer this request")
