#!/usr/bin/env bash
# Read the service's logs, all or one component's (the seed's per-component filters, on the JSON
# fields every program logs: severity, component, message).
# shellcheck source=scripts/cloud-run.sh
source "$(dirname "$0")/cloud-run.sh"

COMPONENTS="gateway ingest command_api broker process_monitor entrypoint"

usage() {
    cat <<USAGE
Usage: scripts/logs.sh [COMPONENT|all] [--limit N] [--since DURATION] [--severity LEVEL]

  COMPONENT        one of: $COMPONENTS (default: all)
  --limit N        at most N entries (default 100)
  --since DURATION how far back, e.g. 30m, 2h, 1d (default 1h)
  --severity LEVEL this severity and above: DEBUG, INFO, WARNING, ERROR, CRITICAL
$COMMON_OPTIONS
USAGE
}

parse_common "$@"
COMPONENT="all"
LIMIT=100
SINCE="1h"
SEVERITY=""
set -- "${ARGS[@]+"${ARGS[@]}"}"
while (($#)); do
    case "$1" in
        --limit)
            (($# >= 2)) && [[ "$2" =~ ^[1-9][0-9]*$ ]] || die_usage "--limit needs a positive number"
            LIMIT="$2"
            shift 2
            ;;
        --since)
            (($# >= 2)) && [[ "$2" =~ ^[1-9][0-9]*[smhd]$ ]] || die_usage "--since needs a duration like 30m, 2h or 1d"
            SINCE="$2"
            shift 2
            ;;
        --severity)
            (($# >= 2)) && [[ "$2" =~ ^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$ ]] || die_usage "--severity needs DEBUG, INFO, WARNING, ERROR or CRITICAL"
            SEVERITY="$2"
            shift 2
            ;;
        -*) die_usage "unknown option: $1" ;;
        *)
            [[ " all $COMPONENTS " == *" $1 "* ]] || die_usage "unknown component: $1"
            COMPONENT="$1"
            shift
            ;;
    esac
done

filter="resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"$SERVICE\" AND resource.labels.location=\"$REGION\""
if [[ "$COMPONENT" == "broker" ]]; then
    # Mosquitto's own lines are plain text; the broker wrapper's are JSON.
    filter+=" AND (jsonPayload.component=\"broker\" OR textPayload:\"mosquitto\")"
elif [[ "$COMPONENT" != "all" ]]; then
    filter+=" AND jsonPayload.component=\"$COMPONENT\""
fi
[[ -z "$SEVERITY" ]] || filter+=" AND severity>=$SEVERITY"

gcloud_cmd logging read "$filter" --limit="$LIMIT" --freshness="$SINCE" \
    --format="table(timestamp, severity, jsonPayload.component, jsonPayload.message, textPayload)"
