#!/usr/bin/env bash
# Runs every test of the collection: unit tests, the moto-backed module and role tests,
# ansible-lint (production profile), antsibull-changelog's lint and ansible-test sanity. Installs
# what it needs first.
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

log "antsibull-changelog: fragments, changelogs/changelog.yaml, and CHANGELOG.md generated from them"
antsibull-changelog lint
antsibull-changelog lint-changelog-yaml --strict changelogs/changelog.yaml
# CHANGELOG.md is generated (never edited): it must be what changelogs/changelog.yaml makes.
generated=$(mktemp)
antsibull-changelog generate --output "$generated" --output-format md
if ! diff -u CHANGELOG.md "$generated" >&2; then
    rm -f "$generated"
    die "CHANGELOG.md is not what antsibull-changelog generates: add a fragment to changelogs/fragments/ (README.md, \"Changelog\") instead of editing it, or run antsibull-changelog generate"
fi
rm -f "$generated"

log "ansible-test sanity"
bash scripts/sanity.sh

log "all tests passed"
