# shellcheck shell=bash
# Sourced by scripts/demo.sh and scripts/test.sh: prepares everything both need on a
# fresh machine and exports the environment they run in.
#   - a Python >= 3.12 (ansible-core 2.21 needs it), found rather than assumed;
#   - .venv with the pinned tools of requirements-dev.txt, rebuilt when that file changes;
#   - .build/collections/ansible_collections/systemd_s3/backup -> this checkout, so Ansible
#     and Python import the collection from the working tree under its real name.

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export REPO_ROOT
VENV="$REPO_ROOT/.venv"
BUILD="$REPO_ROOT/.build"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The real interpreter behind a command (not a venv's or pyenv shim's), if it is >= 3.12.
suitable_python() {
    "$1" -c 'import sys, venv, ssl
sys.exit(1) if sys.version_info < (3, 12) else print(getattr(sys, "_base_executable", sys.executable))' 2>/dev/null
}

# Prints the first interpreter >= 3.12: $PYTHON if set, then python3.x on PATH (newest
# first), then pyenv's versions, then uv's managed ones.
find_python() {
    local candidate found
    if [ -n "${PYTHON:-}" ]; then
        suitable_python "$PYTHON" || die "PYTHON=$PYTHON is not a Python >= 3.12 with venv and ssl"
        return
    fi
    for candidate in python3.14 python3.13 python3.12 python3; do
        command -v "$candidate" >/dev/null && found=$(suitable_python "$candidate") && { printf '%s\n' "$found"; return; }
    done
    if command -v pyenv >/dev/null; then
        for candidate in $(find "$(pyenv root)/versions" -mindepth 1 -maxdepth 1 -name '3.1[2-9]*' 2>/dev/null | sort -rV); do
            found=$(suitable_python "$candidate/bin/python3") && { printf '%s\n' "$found"; return; }
        done
    fi
    if command -v uv >/dev/null && candidate=$(uv python find '>=3.12' 2>/dev/null) && found=$(suitable_python "$candidate"); then
        printf '%s\n' "$found"
        return
    fi
    die "no Python >= 3.12 found (ansible-core 2.21 needs one). Install one (pyenv install 3.12, uv python install 3.12, or your distribution's python3.12) or point PYTHON=/path/to/python3.12 at it."
}

# Installs the Debian packages a script needs (as root, or through sudo) unless present.
need_debian_packages() {
    local missing=() pkg sudo=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return
    command -v apt-get >/dev/null || die "missing packages: ${missing[*]} (this script expects Debian or Ubuntu)"
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    log "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_venv() {
    local stamp="$VENV/.requirements.sha256" want
    want=$(cat "$REPO_ROOT/requirements-dev.txt" "$REPO_ROOT/requirements.txt" | sha256sum | cut -d' ' -f1)
    if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && suitable_python "$VENV/bin/python" >/dev/null; then
        return
    fi
    local python
    python=$(find_python)
    log "creating $VENV with $python ($("$python" --version))"
    rm -rf "$VENV"
    "$python" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$REPO_ROOT/requirements.txt" -r "$REPO_ROOT/requirements-dev.txt" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    printf '%s\n' "$want" >"$stamp"
}

link_collection() {
    local parent="$BUILD/collections/ansible_collections/systemd_s3"
    mkdir -p "$parent"
    ln -sfn "$REPO_ROOT" "$parent/backup"
}

ensure_venv
link_collection
export PATH="$VENV/bin:$PATH"
# The working tree first; amazon.aws and friends come from the ansible package in .venv.
export ANSIBLE_COLLECTIONS_PATH="$BUILD/collections"
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=true
export ANSIBLE_LOCALHOST_WARNING=false
export ANSIBLE_INVENTORY_UNPARSED_WARNING=false
export PYTHONDONTWRITEBYTECODE=1
