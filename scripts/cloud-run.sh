# shellcheck shell=bash
# Sourced by deploy.sh, logs.sh, restart.sh and status.sh: the Cloud Run service's coordinates,
# the options they share, and one way to call gcloud.
set -euo pipefail

SERVICE="${SERVICE:-mtc-backend}"
REGION="${REGION:-asia-east1}"
PROJECT="${PROJECT:-${CLOUDSDK_CORE_PROJECT:-}}"
# shellcheck disable=SC2034 # used in the usage text of the scripts that source this file
COMMON_OPTIONS="  --project ID     Google Cloud project (default: \$PROJECT or gcloud's configured project)
  --region NAME    Cloud Run region (default: \$REGION or asia-east1)
  --service NAME   Cloud Run service (default: \$SERVICE or mtc-backend)
  -h, --help       this text"

# Report a usage error: the reason, then the script's usage (its own `usage` function); exit 2.
die_usage() {
    echo "error: $1" >&2
    usage >&2
    exit 2
}

# Consume --project / --region / --service (and -h); the other arguments are left in ARGS.
ARGS=()
parse_common() {
    while (($#)); do
        case "$1" in
            --project | --region | --service)
                (($# >= 2)) && [[ -n "$2" && "$2" != -* ]] || die_usage "$1 needs a value"
                case "$1" in
                    --project) PROJECT="$2" ;;
                    --region) REGION="$2" ;;
                    --service) SERVICE="$2" ;;
                esac
                shift 2
                ;;
            -h | --help)
                usage
                exit 0
                ;;
            *)
                ARGS+=("$1")
                shift
                ;;
        esac
    done
}

# gcloud with the project flag when one was given (otherwise gcloud's own configuration applies).
gcloud_cmd() {
    if [[ -n "$PROJECT" ]]; then
        gcloud "$@" --project="$PROJECT"
    else
        gcloud "$@"
    fi
}
