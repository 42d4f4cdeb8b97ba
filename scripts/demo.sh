#!/usr/bin/env bash
# The main job on the embedded default: a moto server on 127.0.0.1 stands in for AWS (with IAM
# enforced on S3, as AWS does), `ansible-playbook site.yml` runs against it with the local
# inventory, and a report shows what was made and proves each host's key only reaches its own
# prefix.
#   bash scripts/demo.sh           run, report, stop the endpoint
#   bash scripts/demo.sh --keep    leave the endpoint running to explore (its URL is printed)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"

keep=false
[ "${1:-}" = "--keep" ] && keep=true

port=${BACKUP_DEMO_MOTO_PORT:-5000}
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port on 127.0.0.1 is in use; set BACKUP_DEMO_MOTO_PORT to a free port"
fi
export BACKUP_DEMO_MOTO_PORT=$port
endpoint="http://127.0.0.1:$port"
export BACKUP_DEMO_STATE_DIR="$REPO_ROOT/.state"
mkdir -p "$BACKUP_DEMO_STATE_DIR"
# Nothing of the machine's own AWS configuration may leak into the demo.
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN

log "starting moto on $endpoint (IAM enforced after the admin user is created)"
INITIAL_NO_AUTH_ACTION_COUNT=3 moto_server -H 127.0.0.1 -p "$port" >.state/moto.log 2>&1 &
moto_pid=$!
if ! $keep; then
    trap 'kill $moto_pid 2>/dev/null || true' EXIT
fi
for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.2
done

# The operator's own admin credentials, as AWS would have them.
eval "$(python scripts/demo_report.py --endpoint "$endpoint" bootstrap-admin)"

log "ansible-playbook -i inventories/local site.yml"
ansible-playbook -i inventories/local site.yml

log "second run: everything is already right, so nothing changes (changed=0)"
ansible-playbook -i inventories/local site.yml | tail -n 3

log "what landed in the (local) AWS account"
python scripts/demo_report.py --endpoint "$endpoint" report \
    --bucket demo-backups --prefix hosts --credentials-dir "$BACKUP_DEMO_STATE_DIR/credentials"

if $keep; then
    log "moto keeps running at $endpoint (pid $moto_pid); admin keys: AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID"
fi
