#!/usr/bin/env bash
# Restart every program: a new revision (same image and settings) replaces the running instance.
# The seed's `update-traffic --to-latest` only moves traffic and restarts nothing.
# shellcheck source=scripts/cloud-run.sh
source "$(dirname "$0")/cloud-run.sh"

usage() {
    cat <<USAGE
Usage: scripts/restart.sh [--project ID] [--region NAME] [--service NAME]

Deploys a new revision of the running configuration (stamped RESTARTED_AT), so that Cloud Run
starts a fresh instance and stops the old one with SIGTERM (the ingest writes its cache first).
$COMMON_OPTIONS
USAGE
}

parse_common "$@"
((${#ARGS[@]} == 0)) || die_usage "unexpected argument: ${ARGS[0]}"
gcloud_cmd run services update "$SERVICE" --region="$REGION" --update-env-vars="RESTARTED_AT=$(date -u +%Y%m%dT%H%M%SZ)"
