# syntax=docker/dockerfile:1
# streamapp worker image: `docker build -t streamapp .`
# Runs `streamapp worker` by default; any other subcommand works too
# (`docker run --rm streamapp dead-letters list`).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with the project installed (non-editable) ------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/streamapp
ENV PATH=/opt/streamapp/bin:$PATH
WORKDIR /src

# Dependencies first, from pyproject.toml alone, so that a code change does not
# reinstall them. Every runtime dependency ships a manylinux wheel for x86_64,
# so no compiler is needed here.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# README* is optional (pyproject names README.md; the build works without it). It
# sits beside a file that always exists because a COPY whose only source is an
# unmatched wildcard fails on some builders.
COPY pyproject.toml README* ./
COPY streamapp ./streamapp
COPY simulator ./simulator
# The carts protobuf code is generated at build time (setup.py) from protobuf/.
COPY setup.py MANIFEST.in ./
COPY protobuf ./protobuf
RUN pip install --no-deps . \
    && pip check

# --- runtime ------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="streamapp" \
      org.opencontainers.image.description="Webhooks into Kafka, Faust agents, PostgreSQL."

# A fixed numeric uid/gid so Kubernetes can verify runAsNonRoot.
ARG APP_UID=10001
RUN groupadd --gid ${APP_UID} streamapp \
    && useradd --uid ${APP_UID} --gid streamapp --no-create-home \
       --home-dir /var/lib/streamapp --shell /usr/sbin/nologin streamapp \
    && install -d -o streamapp -g streamapp -m 0750 /var/lib/streamapp

COPY --from=build /opt/streamapp /opt/streamapp

ENV PATH=/opt/streamapp/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/streamapp \
    STREAMAPP_WEB_PORT=6066

# Faust's data dir (`streamapp-data/`) and STREAMAPP_DATA_DIR (`.streamapp/`) are
# relative to the working directory: it must be writable by the app user.
WORKDIR /var/lib/streamapp
USER ${APP_UID}:${APP_UID}

EXPOSE 6066

# The web server listens on STREAMAPP_WEB_BIND (127.0.0.1 unless compose or the
# chart set 0.0.0.0; STREAMAPP_WEB_HOST is the name advertised to the other
# workers): loopback works for the check either way.
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('STREAMAPP_WEB_PORT', '6066'), timeout=4)"]

ENTRYPOINT ["streamapp"]
CMD ["worker"]
