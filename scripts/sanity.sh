#!/usr/bin/env bash
# ansible-test sanity needs the collection at .../ansible_collections/systemd_s3/backup as a real
# directory (it resolves symlinks) and its dependencies beside it, so it runs on a copy of the
# files git knows about, with amazon.aws linked in from the ansible package.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"

# Outside the checkout: inside it, ansible-test would ask git and see the copy as ignored files.
root="${XDG_CACHE_HOME:-$HOME/.cache}/systemd_s3.backup/sanity/ansible_collections"
rm -rf "$root/systemd_s3"
mkdir -p "$root/systemd_s3/backup" "$root/amazon"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"
done | xargs -0 cp --parents -t "$root/systemd_s3/backup"

site=$(python -c 'import ansible_collections.amazon.aws as m, os; print(os.path.dirname(m.__path__[0]))')
ln -sfn "$site/aws" "$root/amazon/aws"

# ansible-test bootstraps pip in its venvs with a script from its own file server; where that
# server is unreachable, an equivalent built on ensurepip stands in (only if none is cached).
pip_version=$(python -c 'import re, ansible_test._internal.python_requirements as r, inspect; print(re.search(r"pip=.([0-9.]+).", inspect.getsource(r)).group(1))')
get_pip="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [ ! -s "$get_pip" ]; then
    mkdir -p "$(dirname "$get_pip")"
    cp "$REPO_ROOT/scripts/offline/get_pip.py" "$get_pip"
fi

cd "$root/systemd_s3/backup"
pyver=$(python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
# --venv: ansible-test installs its own pinned checkers (pylint, validate-modules, ...) into
# cached virtual environments under ~/.ansible/test; --python limits it to the interpreter we have.
ansible-test sanity --venv --python "$pyver" --color no "$@"
