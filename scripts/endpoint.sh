# shellcheck shell=bash
# Sourced by scripts/demo.sh and scripts/molecule.sh (after env.sh): the local AWS endpoint
# (tests/harness/endpoint.py: moto, plain or enforcing IAM as AWS does), started, waited for and
# stopped by tests/harness/servers.py, the helper the tests and the benchmarks use too.
#   isolate_aws_environment        nothing of the machine's AWS configuration or keys leaks in
#   start_endpoint DIR [OPTIONS]   starts it (OPTIONS: servers.py start's: --enforce, --new-key-delay S,
#                                  --port P, --no-audit) and returns once it answers; or, saying why
#                                  (port in use, the end of its log), fails. Then as load_endpoint.
#   endpoint_running DIR           whether DIR's endpoint of an earlier command still answers; if so,
#                                  as load_endpoint
#   load_endpoint DIR              sets ENDPOINT_DIR, ENDPOINT_PID, ENDPOINT_PORT, ENDPOINT_URL and
#                                  exports its keys (the admin's when enforcing) as AWS_ACCESS_KEY_ID/...
#   stop_endpoint                  stops the loaded endpoint (SIGTERM, then SIGKILL)
# DIR receives endpoint.log (its output and access log), audit.jsonl, admin.ini (enforcing: the
# admin's keys) and endpoint.env (what load_endpoint reads; 0600).

SERVERS_PY="$REPO_ROOT/tests/harness/servers.py"
# What load_endpoint sets, for the scripts that source this file.
# shellcheck disable=SC2034
ENDPOINT_DIR='' ENDPOINT_PID='' ENDPOINT_PORT='' ENDPOINT_URL=''

isolate_aws_environment() {
    eval "$(python "$SERVERS_PY" shell-env)"
}

start_endpoint() {
    local dir=$1
    shift
    python "$SERVERS_PY" start "$dir" "$@" || return 1
    load_endpoint "$dir"
}

endpoint_running() {
    python "$SERVERS_PY" check "$1" && load_endpoint "$1"
}

load_endpoint() {
    local ENDPOINT_ACCESS_KEY_ID='' ENDPOINT_SECRET_ACCESS_KEY=''
    # shellcheck source=/dev/null
    source "$1/endpoint.env"
    ENDPOINT_DIR=$1
    if [ -z "$ENDPOINT_ACCESS_KEY_ID" ] || [ -z "$ENDPOINT_SECRET_ACCESS_KEY" ]; then
        die "no keys in $1/endpoint.env"
    fi
    AWS_ACCESS_KEY_ID=$ENDPOINT_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$ENDPOINT_SECRET_ACCESS_KEY
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
}

stop_endpoint() {
    [ -n "$ENDPOINT_DIR" ] || return 0
    python "$SERVERS_PY" stop "$ENDPOINT_DIR" || true
}
