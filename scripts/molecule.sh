#!/usr/bin/env bash
# Runs the molecule scenario (extensions/molecule/default) on real systemd containers: makes
# sure Docker answers, builds the host image when its recipe changed, starts the local AWS endpoint
# on 127.0.0.1 (tests/harness/endpoint.py through scripts/endpoint.sh), then `molecule ARGS`. The
# default scenario's endpoint enforces IAM as AWS does (conditions, KMS, new keys refused for their
# first 3 s) and records every request of a non-admin principal in $BUILD/endpoint-molecule/audit.jsonl;
# the fault suite, which switches moto's own enforcement on and off around its wrong-key faults, gets
# the same endpoint plain (moto with nothing in front), in $BUILD/endpoint-molecule-faults.
#   bash scripts/molecule.sh               molecule test: a fresh endpoint, stopped at the end
#   bash scripts/molecule.sh converge      development: create/prepare/converge/verify/login
#                                          share one endpoint, kept running until destroy
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

# Nothing of the machine's own AWS configuration may leak in. Keys for what runs while no endpoint
# does (molecule destroy); the endpoint's replace them.
isolate_aws_environment
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1

# The scenario (molecule's -s/--scenario-name NAME, e.g. faults): each has an endpoint of its own.
scenario=default previous=''
for argument in "$@"; do
    case $previous in -s | --scenario-name) scenario=$argument ;; esac
    case $argument in --scenario-name=*) scenario=${argument#*=} ;; esac
    previous=$argument
done
suffix=''
[ "$scenario" = default ] || suffix="-$scenario"
# Its logs, audit and admin keys, and (endpoint.env) its pid and port for the commands after it.
endpoint_dir="$BUILD/endpoint-molecule$suffix"
if [ "$scenario" = default ]; then
    endpoint_options=(--enforce --new-key-delay 3)
    endpoint_kind="the IAM-enforcing endpoint"
else
    # The fault suite switches moto's own IAM enforcement on and off around its wrong-key faults
    # (fault_check.py enforce on|off, through /moto-api/reset-auth): moto with nothing in front.
    endpoint_options=(--no-audit)
    endpoint_kind="plain moto"
fi

start_moto() {
    log "starting $endpoint_kind on 127.0.0.1 (logs: $endpoint_dir)"
    start_endpoint "$endpoint_dir" "${endpoint_options[@]}" || die "the AWS endpoint did not start (why: above)"
    log "the endpoint answers at $ENDPOINT_URL"
}

running=false
endpoint_running "$endpoint_dir" && running=true  # a development run's, with its keys
case $1 in
    test)
        ! $running || stop_endpoint  # a development run's endpoint: test starts afresh
        trap stop_endpoint EXIT
        start_moto
        ;;
    destroy)
        ! $running || trap stop_endpoint EXIT
        ;;
    *)
        # The hosts' jobs point at this port, so it has to outlive each command.
        $running || start_moto
        log "the endpoint at $ENDPOINT_URL (pid $ENDPOINT_PID) runs until: bash scripts/molecule.sh destroy"
        ;;
esac
export MOTO_PORT=${ENDPOINT_PORT:-}

molecule "$@"
