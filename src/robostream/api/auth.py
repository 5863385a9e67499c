"""Access: bearer tokens stored only as SHA-256 hex digests, ``api.read_tokens`` for reads and
``api.write_tokens`` for the routes that act on robots (:data:`WRITE_ROUTES`).

``Authorization: Bearer <token>`` on HTTP requests; browsers cannot set headers on a WebSocket,
so ``/v1/live`` also takes ``?access_token=<token>``. The viewer page, its static files,
``/openapi.json``, ``/healthz`` and ``/metrics`` are public. ``api.anonymous_read`` (local demos) lets every
request read. Write routes always need a write token (a read token alone is ``403``); they
never fall back to anonymous access.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Middleware

from robostream.api.errors import ApiError, Handler

PUBLIC_PATHS = frozenset({"/", "/openapi.json", "/healthz", "/metrics", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/",)
TOKEN_QUERY = "access_token"  # noqa: S105 (a parameter name)
TOKEN_QUERY_PATHS = frozenset({"/v1/live"})
#: (method, route) of the routes that need a write token.
WRITE_ROUTES = frozenset({("POST", "/v1/robots/{id}/rpc")})


def hash_token(token: str) -> str:
    """The SHA-256 hex digest stored in ``api.read_tokens``/``api.write_tokens`` for ``token``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ReadAuth:
    """Checks tokens in constant time against the configured digests (read or write tokens)."""

    def __init__(self, digests: Iterable[str], *, anonymous: bool) -> None:
        self._digests = [d.encode() for d in digests]
        self.anonymous = anonymous

    def allows(self, token: str | None) -> bool:
        if self.anonymous:
            return True
        if not token:
            return False
        digest = hash_token(token).encode()
        found = False
        for known in self._digests:  # compare with all: timing does not tell which
            found |= hmac.compare_digest(digest, known)
        return found


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def request_token(request: web.Request) -> str | None:
    """The bearer token of the header, or of ``?access_token=`` on the WebSocket route."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if request.path in TOKEN_QUERY_PATHS:
        return request.query.get(TOKEN_QUERY) or None
    return None


def is_write(request: web.Request) -> bool:
    """Whether the request is for a route of :data:`WRITE_ROUTES`."""
    resource = request.match_info.route.resource
    return resource is not None and (request.method, resource.canonical) in WRITE_ROUTES


def check_write(auth: ReadAuth, token: str | None) -> None:
    """``401`` without a token, ``403`` with one that is not a write token."""
    if not token:
        raise ApiError(401, "unauthorized", "a write token is required to call robots (Authorization: "
                       "Bearer <write token>)", {"WWW-Authenticate": 'Bearer realm="robostream"'})
    if not auth.allows(token):
        raise ApiError(403, "forbidden", "this token may not call robots: a write token (api.write_tokens) "
                       "is required")


def auth_middleware(auth: ReadAuth, write: ReadAuth | None = None) -> Middleware:
    """Refuse ``401 unauthorized`` to non-public requests without a valid read token, and write
    routes without a write token (``401`` none, ``403`` another)."""
    writers = write or ReadAuth((), anonymous=False)

    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS" or is_public(request.path):
            return await handler(request)
        if is_write(request):
            check_write(writers, request_token(request))
            return await handler(request)
        if auth.allows(request_token(request)):
            return await handler(request)
        raise ApiError(401, "unauthorized", "a valid read token is required (Authorization: Bearer "
                       "<token>)", {"WWW-Authenticate": 'Bearer realm="robostream"'})

    return check_token
