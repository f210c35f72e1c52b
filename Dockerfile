# syntax=docker/dockerfile:1
# The all-in-one image: Mosquitto, the gateway, the ingest and the command API under supervisord,
# started by scripts/entrypoint. docker/cloud-run/Dockerfile.all-in-one (the seed's path) is the
# same image (a test keeps the two identical apart from this header).
#   docker build -t vehicle-backend .

# -- build: the runtime dependencies, pinned by requirements.lock, in a virtualenv -----------------
FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml requirements.lock ./
RUN python -m venv /opt/venv \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > runtime.txt \
    && /opt/venv/bin/pip install --constraint requirements.lock --requirement runtime.txt

# -- runtime: Python, Mosquitto from Debian, the virtualenv and the source; no compilers ------------
FROM python:3.12-slim
# Debian's Mosquitto follows the base image's release; pinning its version would break every rebuild.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends mosquitto \
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
