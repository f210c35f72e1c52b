#!/usr/bin/env bash
# The service's state: its URL, ready condition and revisions, and (with --health) its /api/health.
# shellcheck source=scripts/cloud-run.sh
source "$(dirname "$0")/cloud-run.sh"

usage() {
    cat <<USAGE
Usage: scripts/status.sh [--health] [--project ID] [--region NAME] [--service NAME]

  --health         also fetch GET /api/health from the service's URL (per-component status)
$COMMON_OPTIONS
USAGE
}

parse_common "$@"
HEALTH=0
for arg in "${ARGS[@]+"${ARGS[@]}"}"; do
    case "$arg" in
        --health) HEALTH=1 ;;
        *) die_usage "unknown argument: $arg" ;;
    esac
done

gcloud_cmd run services describe "$SERVICE" --region="$REGION" \
    --format="yaml(status.url, status.conditions, status.latestReadyRevisionName, spec.template.metadata.annotations)"
gcloud_cmd run revisions list --service="$SERVICE" --region="$REGION" --limit=5
if ((HEALTH)); then
    url=$(gcloud_cmd run services describe "$SERVICE" --region="$REGION" --format="value(status.url)")
    [[ -n "$url" ]] || { echo "error: the service has no URL yet" >&2; exit 1; }
    curl --silent --show-error --max-time 10 "$url/api/health"
    echo
fi
