#!/usr/bin/env bash
# Runs every test of the collection: unit tests, the moto-backed module and role tests,
# ansible-lint (production profile) and ansible-test sanity. Installs what it needs first.
#   bash scripts/test.sh            everything
#   bash scripts/test.sh -k bucket  extra arguments go to pytest (lint and sanity still run)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"
need_debian_packages shellcheck age gpg awscli duplicity python3-boto3  # sanity's shell checker; the runner's encryption, sync and duplicity tests

log "pytest: unit and moto-backed integration tests"
# pytest exits 5 when it collected nothing; under set -e that fails the run, as it should.
pytest "$@"

log "ansible-lint --profile production"
ansible-lint --offline --profile production

log "ansible-test sanity"
bash scripts/sanity.sh

log "all tests passed"
