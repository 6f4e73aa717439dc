# syntax=docker/dockerfile:1
# The reference agent runtime: the image the railway provider deploys for each instance (port 8080).
# Build from the repository root: docker build -f docker/runtime.Dockerfile -t warmpool/runtime .
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml docker/requirements.py ./
# The runtime needs only the web stack: no database drivers, no shared/ package.
RUN --mount=type=cache,target=/root/.cache/pip \
    python requirements.py --only fastapi uvicorn pydantic pydantic-settings > requirements.txt \
    && /opt/venv/bin/pip install -r requirements.txt
COPY runtime/ runtime/
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/venv/bin/pip install --no-deps /src

FROM ${PYTHON_IMAGE}
# HOST and PORT are the instance contract's names (no prefix); the platform may override PORT.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8080 \
    RUNTIME_DATA_DIR=/data
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app \
    && mkdir /data \
    && chown app:app /data
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 docker/runtime-entrypoint.sh /usr/local/bin/runtime-entrypoint
WORKDIR /data
# No USER: Railway mounts the volume at /data owned by root after the build, so the entrypoint starts as
# root only to give /data to uid 10001, then drops to it (setpriv) before the runtime starts.
EXPOSE 8080
# /pool/health answers 503 until the instance is ready, which is exactly what "unhealthy" should mean.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/pool/health' % os.environ.get('PORT', '8080'), timeout=4)"]
ENTRYPOINT ["runtime-entrypoint"]
CMD ["python", "-m", "runtime"]
