# shellcheck shell=bash
# Sourced by scripts/demo.sh and scripts/molecule.sh (after env.sh): the local AWS endpoint,
# tests/harness/endpoint.py, which is moto behind a layer that authorizes every request as AWS's
# IAM would (conditions, KMS, HeadBucket as s3:ListBucket, ...) and records it in an audit log.
#   start_endpoint PORT DIR [endpoint options]   starts it enforcing IAM, waits until it answers
#                                                (or dies saying why), sets ENDPOINT_PID, and
#                                                exports the admin's keys as AWS_ACCESS_KEY_ID/...
#   stop_endpoint                                stops it
# DIR receives endpoint.log (its access log), audit.jsonl and admin.ini (the admin's keys, 0600).

start_endpoint() {
    local port=$1 dir=$2 waited=0
    shift 2
    mkdir -p "$dir"
    rm -f "$dir/endpoint.log" "$dir/admin.ini" "$dir/audit.jsonl"
    python "$REPO_ROOT/tests/harness/endpoint.py" --port "$port" --enforce \
        --audit-log "$dir/audit.jsonl" --admin-credentials "$dir/admin.ini" "$@" >"$dir/endpoint.log" 2>&1 &
    ENDPOINT_PID=$!
    until grep -q '^ready ' "$dir/endpoint.log" 2>/dev/null; do
        kill -0 "$ENDPOINT_PID" 2>/dev/null || die "the AWS endpoint exited; see $dir/endpoint.log"
        [ "$waited" -lt 300 ] || die "the AWS endpoint did not answer within 60 s; see $dir/endpoint.log"
        sleep 0.2
        waited=$((waited + 1))
    done
    use_endpoint_admin "$dir"
}

# The operator's admin keys of an endpoint started in DIR, as AWS would have them.
use_endpoint_admin() {
    AWS_ACCESS_KEY_ID=$(sed -n 's/^aws_access_key_id *= *//p' "$1/admin.ini")
    AWS_SECRET_ACCESS_KEY=$(sed -n 's/^aws_secret_access_key *= *//p' "$1/admin.ini")
    if [ -z "$AWS_ACCESS_KEY_ID" ] || [ -z "$AWS_SECRET_ACCESS_KEY" ]; then
        die "no admin keys in $1/admin.ini"
    fi
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
}

stop_endpoint() {
    local waited=0
    [ -n "${ENDPOINT_PID:-}" ] || return 0
    kill "$ENDPOINT_PID" 2>/dev/null || true
    while kill -0 "$ENDPOINT_PID" 2>/dev/null && [ "$waited" -lt 50 ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
}
