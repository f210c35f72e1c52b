# First cut of the all-in-one image; hardening, hadolint and Cloud Run deployment come with the "Ship it" issue.
FROM python:3.12-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends mosquitto \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.lock
COPY . .
RUN pip install --no-cache-dir --no-deps -e . \
    && useradd --system --create-home app && mkdir -p /run/backend && chown app /run/backend
USER app
ENV RUNTIME_DIR=/run/backend BROKER_RUNTIME_DIR=/run/backend/broker API_HOST=0.0.0.0 PORT=8080 PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "scripts/healthcheck"]
CMD ["supervisord", "-c", "/app/supervisord.conf"]
