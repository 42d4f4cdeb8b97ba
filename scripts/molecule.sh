#!/usr/bin/env bash
# Runs the molecule scenario (extensions/molecule/default) on real systemd containers: makes
# sure Docker answers, builds the host image when its recipe changed, starts the local AWS endpoint
# on 127.0.0.1, then `molecule ARGS`. The default scenario gets tests/harness/endpoint.py, which
# enforces IAM as AWS does (conditions, KMS, new keys refused for their first 3 s) and records every
# request of a non-admin principal in $BUILD/endpoint-molecule/audit.jsonl; the fault suite, which
# switches moto's own enforcement on and off around its wrong-key faults, keeps a plain moto server.
#   bash scripts/molecule.sh               molecule test: a fresh moto, stopped at the end
#   bash scripts/molecule.sh converge      development: create/prepare/converge/verify/login
#                                          share one moto server, kept running until destroy
#   bash scripts/molecule.sh login -h db1  (or: docker exec -it db1 bash)
#   bash scripts/molecule.sh test -s faults   another scenario (extensions/molecule/faults: the fault suite)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
# shellcheck source-path=SCRIPTDIR source=docker.sh
source "$REPO_ROOT/scripts/docker.sh"
# shellcheck source-path=SCRIPTDIR source=endpoint.sh
source "$REPO_ROOT/scripts/endpoint.sh"
need_debian_packages zstd age gpg  # verify.yml decompresses and decrypts stored backups
cd "$REPO_ROOT"

[ $# -gt 0 ] || set -- test
MOLECULE_HOST_IMAGE=$(bash scripts/host-image.sh)
export MOLECULE_HOST_IMAGE

# Keys for plain moto (it accepts any; the enforcing endpoint's admin replaces them); nothing of the
# machine's own AWS configuration may leak in.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN

# The scenario (molecule's -s/--scenario-name NAME, e.g. faults): each has a moto server of its own.
scenario=default previous=''
for argument in "$@"; do
    case $previous in -s | --scenario-name) scenario=$argument ;; esac
    case $argument in --scenario-name=*) scenario=${argument#*=} ;; esac
    previous=$argument
done
suffix=''
[ "$scenario" = default ] || suffix="-$scenario"
moto_log="$BUILD/moto-molecule$suffix.log"
# Where a development run's moto server is recorded (pid and port) for the commands after it.
moto_state="$BUILD/moto-molecule$suffix.env"

moto_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

endpoint_dir="$BUILD/endpoint-molecule$suffix"

start_moto() {
    MOTO_PORT=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    if [ "$scenario" = default ]; then
        log "starting the IAM-enforcing endpoint on http://127.0.0.1:$MOTO_PORT (logs: $endpoint_dir)"
        start_endpoint "$MOTO_PORT" "$endpoint_dir" --new-key-delay 3
        MOTO_PID=$ENDPOINT_PID
        return
    fi
    log "starting moto on http://127.0.0.1:$MOTO_PORT (log: $moto_log)"
    moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$moto_log" 2>&1 &
    MOTO_PID=$!
    local waited=0
    until moto_answers "$MOTO_PORT"; do
        kill -0 "$MOTO_PID" 2>/dev/null || die "moto exited; see $moto_log"
        [ "$waited" -lt 150 ] || die "moto did not answer within 30s; see $moto_log"
        sleep 0.2
        waited=$((waited + 1))
    done
}

stop_moto() {
    local waited=0
    rm -f "$moto_state"
    [ -n "$MOTO_PID" ] || return 0
    kill "$MOTO_PID" 2>/dev/null || true
    while kill -0 "$MOTO_PID" 2>/dev/null && [ "$waited" -lt 50 ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
}

MOTO_PID='' MOTO_PORT=''
# shellcheck source=/dev/null
[ -f "$moto_state" ] && source "$moto_state"
if [ -n "$MOTO_PID" ] && ! { kill -0 "$MOTO_PID" 2>/dev/null && moto_answers "$MOTO_PORT"; }; then
    MOTO_PID='' MOTO_PORT=''
fi
case $1 in
    test)
        [ -z "$MOTO_PID" ] || stop_moto  # a development run's server: test starts afresh
        trap stop_moto EXIT
        start_moto
        ;;
    destroy)
        [ -z "$MOTO_PID" ] || trap stop_moto EXIT
        ;;
    *)
        # The hosts' jobs point at this port, so it has to outlive each command.
        if [ -z "$MOTO_PID" ]; then
            start_moto
            printf 'MOTO_PID=%s MOTO_PORT=%s\n' "$MOTO_PID" "$MOTO_PORT" >"$moto_state"
        fi
        log "moto at http://127.0.0.1:$MOTO_PORT (pid $MOTO_PID) until: bash scripts/molecule.sh destroy"
        ;;
esac
# A development run's endpoint from an earlier command: its admin's keys again.
[ "$scenario" != default ] || [ -z "$MOTO_PID" ] || [ -n "${ENDPOINT_PID:-}" ] || use_endpoint_admin "$endpoint_dir"
export MOTO_PORT

molecule "$@"
