"""CORS for the dashboard origins of ``api.cors_origins`` (``*``: any origin).

A preflight ``OPTIONS`` from an allowed origin is answered ``204`` with the methods and headers
the API takes; other responses carry ``Access-Control-Allow-Origin`` for that origin and expose
the ``X-Robostream-*`` headers. Requests from other origins get no CORS headers (the browser
then refuses to hand the answer to the page).
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Middleware

from robostream.api.errors import Handler

ALLOW_METHODS = "GET, HEAD, POST, OPTIONS"
ALLOW_HEADERS = "Authorization, Accept, Content-Type"
EXPOSE_HEADERS = "X-Robostream-Source, X-Robostream-Resolution, X-Robostream-Bucket-Us, Location"
MAX_AGE_S = "600"
#: CORS headers of this request's answer (streamed answers must send them before the body).
CORS_HEADERS = web.RequestKey("robostream_cors_headers", dict)


class CorsPolicy:
    """Which origins may read answers."""

    def __init__(self, origins: Iterable[str]) -> None:
        self.origins = {o.rstrip("/") for o in origins}
        self.any = "*" in self.origins

    def allows(self, origin: str | None) -> bool:
        return origin is not None and (self.any or origin.rstrip("/") in self.origins)

    def headers(self, origin: str) -> dict[str, str]:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                "Access-Control-Expose-Headers": EXPOSE_HEADERS}


def cors_middleware(policy: CorsPolicy) -> Middleware:
    """Answer preflights and add CORS headers for allowed origins."""

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        allowed = policy.allows(origin)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            if not allowed or origin is None:
                return web.Response(status=403, text="origin not allowed")
            return web.Response(status=204, headers={
                **policy.headers(origin), "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS, "Access-Control-Max-Age": MAX_AGE_S})
        if allowed and origin is not None:
            request[CORS_HEADERS] = policy.headers(origin)  # streamed answers add them first
        response = await handler(request)
        if allowed and origin is not None and not response.prepared:
            response.headers.update(policy.headers(origin))
        return response

    return cors
