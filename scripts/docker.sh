#!/usr/bin/env bash
# Makes sure a Docker engine answers, for the molecule tests on systemd containers:
# installs Debian's docker.io and debootstrap if missing, and starts dockerd by hand when no
# engine runs (machines without an init that manages it; its log: .build/dockerd.log).
#   source scripts/docker.sh    (after scripts/env.sh) or   bash scripts/docker.sh
# Quick and idempotent when everything is already there.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
declare -F need_debian_packages >/dev/null || source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

DOCKER_START_TIMEOUT=${DOCKER_START_TIMEOUT:-60}

ensure_docker() {
    need_debian_packages docker.io debootstrap
    docker info >/dev/null 2>&1 && return
    [ "$(id -u)" = 0 ] || die "no Docker engine answers and only root can start one: start Docker (e.g. sudo systemctl start docker), or run as root"
    mkdir -p "$REPO_ROOT/.build"
    local dockerd_log="$REPO_ROOT/.build/dockerd.log"
    # No bridge and no iptables: the test containers all use the host's network.
    log "starting dockerd (log: $dockerd_log)"
    nohup dockerd --bridge=none --iptables=false >>"$dockerd_log" 2>&1 </dev/null &
    local waited=0
    until docker info >/dev/null 2>&1; do
        if ! kill -0 $! 2>/dev/null; then
            die "dockerd exited; the end of $dockerd_log:
$(tail -n 20 "$dockerd_log")"
        fi
        [ "$waited" -lt $((DOCKER_START_TIMEOUT * 5)) ] || die "dockerd did not answer within ${DOCKER_START_TIMEOUT}s; see $dockerd_log"
        sleep 0.2
        waited=$((waited + 1))
    done
}

ensure_docker
