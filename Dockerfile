# syntax=docker/dockerfile:1.7
# robostream's services (gateway, schema registry, processors, sinks, API) in one image.
#   docker build -t robostream .        then: docker run --rm robostream --help
# Dependencies come from uv.lock (frozen): the default dependencies only, without the `dev` and
# `stack` groups (the local embedded stack's servers are for development and tests, never shipped).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: a virtual environment in /opt/venv from pyproject.toml + uv.lock ------------------------
FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
# Dependencies first (cached while only the sources change) ...
# (the robot SDK, sdk/, is a uv workspace member: its pyproject.toml is part of the lock's picture)
COPY pyproject.toml uv.lock ./
COPY sdk/pyproject.toml sdk/README.md ./sdk/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-group stack --no-install-workspace
# ... then the project and the SDK themselves, as regular (non-editable) installs.
COPY README.md ./
COPY src ./src
COPY sdk ./sdk
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-group stack --no-editable

# -- runtime: the venv and config.yaml, run as an unprivileged user --------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 robostream \
    && useradd --system --uid 10001 --gid robostream --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin robostream \
    && install -d -o robostream -g robostream /app /app/.robostream
COPY --from=build /opt/venv /opt/venv
COPY config.yaml /app/config.yaml
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ROBOSTREAM_CONFIG=/app/config.yaml
WORKDIR /app
USER robostream:robostream
# gateway 8080, API 8000, schema registry 8081, sink REST status 8083
EXPOSE 8080 8000 8081 8083
ENTRYPOINT ["robostream"]
CMD ["--help"]
