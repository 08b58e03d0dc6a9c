# realtime-strategies service image.
#
#   docker build -t <registry>/realtime-strategies:<tag> .
#   docker run --rm -p 8080:8080 -e NATS_URL=nats://nats:4222 <registry>/realtime-strategies:<tag>
#
# Two stages on the same base image (the venv's interpreter symlinks must resolve in both):
# the builder installs the project and its dependencies (pinned `==` in pyproject.toml) into
# /opt/venv from binary wheels only, so no compiler is needed anywhere; the runtime stage
# copies that venv, owned by root and read-only to the unprivileged user 10001, and has no
# pip, build tools or package lists. For reproducible production builds pin the base image
# by digest too: --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest>.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Only what the wheel needs (see [tool.setuptools] in pyproject.toml): tests, docs, deploy
# and bench stay out of the image, and a change to them does not invalidate this layer.
COPY pyproject.toml README.md ./
COPY domain ./domain
COPY application ./application
COPY adapters ./adapters
COPY entrypoints ./entrypoints
# Non-editable install; every dependency must come as a wheel (cp311 manylinux wheels exist
# for all of them), byte-compiled at install time so the read-only runtime never writes .pyc.
RUN pip install --no-cache-dir --only-binary=:all: . \
    && python -m compileall -q /opt/venv/lib \
    && realtime-strategies --help > /dev/null


FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="realtime-strategies" \
      org.opencontainers.image.description="Live crypto market data to trading signals (NATS in, NATS out, admin API on 8080)." \
      org.opencontainers.image.licenses="Proprietary"

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin app

COPY --from=builder --chown=root:root /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    FASTAPI_HOST=0.0.0.0 \
    FASTAPI_PORT=8080

WORKDIR /app
USER 10001:10001

EXPOSE 8080

# Liveness of the API (no curl in slim images: the standard library does the request).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('FASTAPI_PORT', '8080') + '/healthz', timeout=3); sys.exit(0 if r.status == 200 else 1)"]

# The service drains the subscription, flushes signals and closes stores on SIGTERM
# (bounded by SHUTDOWN_GRACE_SECONDS).
STOPSIGNAL SIGTERM

ENTRYPOINT ["realtime-strategies"]
CMD ["serve"]
