#!/usr/bin/env bash
# Build the image with Cloud Build, push it, and deploy it to Cloud Run as the seed describes, but
# with CPU always allocated, exactly one instance and secrets from Secret Manager.
# shellcheck source=scripts/cloud-run.sh
source "$(dirname "$0")/cloud-run.sh"

usage() {
    cat <<USAGE
Usage: scripts/deploy.sh --project ID [--region NAME] [--service NAME] [--tag TAG] [--secret VAR=NAME]...

Builds the all-in-one image (Cloud Build; no local Docker needed), pushes it to
gcr.io/ID/SERVICE:TAG and deploys it with CPU always allocated (the broker and the gateway
run all the time), min and max instances 1 (SAIC allows one session per account) and every
credential from Secret Manager (latest version), never as a plain environment variable.

  --tag TAG        image tag (default: the current git commit, else a timestamp)
  --secret VAR=NAME
                   one more secret, e.g. TELEGRAM_BOT_TOKEN=telegram-bot-token (repeatable)
$COMMON_OPTIONS

Secrets it expects in Secret Manager (docs/operations.md shows how to create them):
$(for pair in "${REQUIRED_SECRETS[@]}"; do echo "  ${pair#*=}  ->  ${pair%%=*}"; done)
USAGE
}

REQUIRED_SECRETS=(
    SAIC_USERNAME=saic-username
    SAIC_PWD=saic-pwd
    DATABASE_URL=database-url
    COMMAND_API_KEY=command-api-key
    MQTT_GATEWAY_PASSWORD=mqtt-gateway-password
    MQTT_INGEST_PASSWORD=mqtt-ingest-password
    MQTT_API_PASSWORD=mqtt-api-password
    MQTT_MONITOR_PASSWORD=mqtt-monitor-password
)

parse_common "$@"
TAG=""
EXTRA_SECRETS=()
set -- "${ARGS[@]+"${ARGS[@]}"}"
while (($#)); do
    case "$1" in
        --tag)
            (($# >= 2)) && [[ "$2" =~ ^[A-Za-z0-9_.-]+$ ]] || die_usage "--tag needs a value of letters, digits, . _ -"
            TAG="$2"
            shift 2
            ;;
        --secret)
            (($# >= 2)) && [[ "$2" =~ ^[A-Z][A-Z0-9_]*=[A-Za-z0-9_-]+$ ]] || die_usage "--secret needs VAR=NAME"
            EXTRA_SECRETS+=("$2")
            shift 2
            ;;
        *) die_usage "unknown argument: $1" ;;
    esac
done
[[ -n "$PROJECT" ]] || die_usage "--project is required (or set PROJECT)"
if [[ -z "$TAG" ]]; then
    TAG=$(git -C "$(dirname "$0")/.." rev-parse --short HEAD 2>/dev/null || date -u +%Y%m%d%H%M%S)
fi
IMAGE="gcr.io/$PROJECT/$SERVICE:$TAG"

secrets=""
for pair in "${REQUIRED_SECRETS[@]}" "${EXTRA_SECRETS[@]+"${EXTRA_SECRETS[@]}"}"; do
    secrets+="${secrets:+,}${pair%%=*}=${pair#*=}:latest"
done

echo "building and pushing $IMAGE"
gcloud_cmd builds submit "$(dirname "$0")/.." --tag="$IMAGE"

echo "deploying $SERVICE to $REGION"
# --timeout bounds a WebSocket's life too: an hour (Cloud Run's most) keeps live streams and
# directly connected devices (/mqtt) connected that long; they reconnect after it.
gcloud_cmd run deploy "$SERVICE" \
    --image="$IMAGE" \
    --region="$REGION" \
    --platform=managed \
    --port=8080 \
    --no-cpu-throttling \
    --min-instances=1 \
    --max-instances=1 \
    --cpu=1 \
    --memory=1Gi \
    --timeout=3600 \
    --set-secrets="$secrets" \
    --set-env-vars="LOG_LEVEL=INFO,API_PROFILE=production"
