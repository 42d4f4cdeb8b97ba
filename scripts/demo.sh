#!/usr/bin/env bash
# The main job on the embedded default: a moto server on 127.0.0.1 stands in for AWS (with IAM
# enforced on S3, as AWS does) and three local containers booting real systemd stand in for the
# fleet (inventories/local). `ansible-playbook site.yml` sets up both sides, runs again to show
# nothing changes, then every backup job is started once and the report shows what landed.
#   bash scripts/demo.sh           run, report, remove the containers and stop the endpoint
#   bash scripts/demo.sh --keep    leave both running to explore (how to reach them is printed)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
# shellcheck source-path=SCRIPTDIR source=docker.sh
source "$REPO_ROOT/scripts/docker.sh"
# shellcheck source-path=SCRIPTDIR source=endpoint.sh
source "$REPO_ROOT/scripts/endpoint.sh"
cd "$REPO_ROOT"

keep=false
[ "${1:-}" = "--keep" ] && keep=true
hosts=(db1 app1 files1)
container() { printf 's3b-demo-%s' "$1"; }

# inventories/local points the fleet at this port.
port=${BACKUP_DEMO_MOTO_PORT:-5000}
export BACKUP_DEMO_MOTO_PORT=$port
export BACKUP_DEMO_STATE_DIR="$REPO_ROOT/.state"
endpoint_dir="$BACKUP_DEMO_STATE_DIR/endpoint"
mkdir -p "$BACKUP_DEMO_STATE_DIR"
# Nothing of the machine's own AWS configuration may leak into the demo.
isolate_aws_environment
need_debian_packages zstd

cleanup() {
    for host in "${hosts[@]}"; do docker rm -f "$(container "$host")" >/dev/null 2>&1 || true; done
    stop_endpoint
}
$keep || trap cleanup EXIT

log "starting the AWS endpoint on http://127.0.0.1:$port (moto, with IAM enforced as AWS does; new keys usable after 3 s)"
# The operator's own admin credentials, as AWS would have them, are exported.
start_endpoint "$endpoint_dir" --enforce --new-key-delay 3 --port "$port" ||
    die "the AWS endpoint did not start (why: above); if port $port is taken, set BACKUP_DEMO_MOTO_PORT to a free port"
# A new endpoint knows none of the keys an earlier demo left behind.
rm -rf "$BACKUP_DEMO_STATE_DIR/credentials"

image=$(bash scripts/host-image.sh)
log "starting the fleet: ${hosts[*]} (containers booting systemd from $image)"
for host in "${hosts[@]}"; do
    docker rm -f "$(container "$host")" >/dev/null 2>&1 || true
    # What a systemd host needs in a container here; see extensions/molecule/default/molecule.yml.
    docker run --detach --name "$(container "$host")" --hostname "$host" --network host \
        --cap-add SYS_ADMIN --security-opt seccomp=unconfined --cgroupns host \
        --tmpfs /run --tmpfs /run/lock --volume /sys/fs/cgroup:/sys/fs/cgroup:rw \
        --stop-signal SIGRTMIN+3 "$image" /lib/systemd/systemd >/dev/null
done
for host in "${hosts[@]}"; do
    docker exec "$(container "$host")" systemctl is-system-running --wait >/dev/null ||
        die "systemd did not come up cleanly in $(container "$host")"
done

log "giving the hosts something to back up (PostgreSQL, an app, files)"
ansible-playbook -i inventories/local tests/fleet/prepare.yml >"$BACKUP_DEMO_STATE_DIR/prepare.log" ||
    die "preparing the hosts failed; see $BACKUP_DEMO_STATE_DIR/prepare.log"

log "ansible-playbook -i inventories/local site.yml"
ansible-playbook -i inventories/local site.yml

log "second run: everything is already right, so nothing changes (changed=0)"
ansible-playbook -i inventories/local site.yml | tail -n 5

log "starting every backup job once, as its timer would"
for host in "${hosts[@]}"; do
    for config in $(docker exec "$(container "$host")" sh -c 'ls /etc/systemd-s3-backup/jobs/*.json'); do
        unit="s3-backup-$(basename "$config" .json).service"
        docker exec "$(container "$host")" systemctl start "$unit" || true
        printf '\n--- %s: journalctl -u %s\n' "$host" "$unit"
        docker exec "$(container "$host")" journalctl -u "$unit" -o cat --no-pager -n 12
    done
done

log "what landed in the (local) AWS account"
python scripts/demo_report.py --endpoint "$ENDPOINT_URL" report \
    --bucket demo-backups --prefix hosts --credentials-dir "$BACKUP_DEMO_STATE_DIR/credentials"

if $keep; then
    log "still running: the endpoint at $ENDPOINT_URL (pid $ENDPOINT_PID, admin keys in $endpoint_dir/admin.ini; stop: python tests/harness/servers.py stop $endpoint_dir); hosts: docker exec -it s3b-demo-db1 bash"
fi
