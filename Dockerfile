# syntax=docker/dockerfile:1
# The all-in-one image: Mosquitto, the gateway, the ingest and the command API under supervisord,
# started by scripts/entrypoint. docker/cloud-run/Dockerfile.all-in-one (the seed's path) is the
# same image (a test keeps the two identical apart from this header).
#   docker build -t vehicle-backend .

# -- build: the runtime dependencies, pinned by requirements.lock, in a virtualenv -----------------
# Debian's own Python (3.13 in trixie) and Mosquitto: the image builds from Debian's packages and
# PyPI alone (tests/test_image.py makes the base with mmdebstrap where it cannot be pulled).
FROM debian:trixie-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Debian's packages follow the base image's release; pinning their versions would break every rebuild.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# Authorities a build behind a TLS-inspecting proxy must trust to reach PyPI (docker/build-ca/README.md).
COPY docker/build-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
WORKDIR /src
COPY pyproject.toml requirements.lock ./
RUN python3 -m venv /opt/venv \
    && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > runtime.txt \
    && /opt/venv/bin/pip install --constraint requirements.lock --requirement runtime.txt

# -- runtime: Python, Mosquitto, the virtualenv and the source; no compilers --------------------------
FROM debian:trixie-slim
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 mosquitto ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY . .
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RUNTIME_DIR=/tmp/backend \
    BROKER_RUNTIME_DIR=/tmp/backend/broker \
    BROKER_IMPLEMENTATION=mosquitto \
    API_HOST=0.0.0.0 \
    PORT=8080
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["python", "scripts/healthcheck"]
CMD ["/app/scripts/entrypoint"]
