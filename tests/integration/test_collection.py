"""The collection as users get it: built with ansible-galaxy, holding what users need and none of the
repository's development files (galaxy.yml's build_ignore), installed from the tarball, and documented
through ansible-doc."""

from __future__ import annotations

import json
import subprocess
import tarfile

import pytest
import yaml

from conftest import BIN, REPO, _isolated_env

MODULES = ["bucket", "access", "alerts", "backups_info", "backups_check"]

# Everything under these directories of the checkout ships (but Python's caches): the collection's
# content (meta/ holds runtime.yml and execution-environment.yml) and its documentation.
SHIPPED_DIRS = ["plugins", "roles", "playbooks", "meta", "docs"]
# Single files users need: the README, the license, the control node's and an execution environment's
# requirements, the entry playbook, the released changelog, and the sanity ignore file that
# ansible-test sanity and ansible-lint's sanity rule read when they check the tarball itself.
SHIPPED_FILES = [
    "README.md", "LICENSE", "CHANGELOG.md", "requirements.txt", "bindep.txt", "site.yml",
    "changelogs/changelog.yaml", "changelogs/config.yaml", "tests/sanity/ignore-2.21.txt",
]
# ansible-galaxy's own metadata, then the top-level entries above. Anything else at the top (a new
# tool's directory, say) fails the test until galaxy.yml's build_ignore or this list decides about it.
TOP_LEVEL = {"MANIFEST.json", "FILES.json", "changelogs", "tests", *SHIPPED_DIRS, *(f for f in SHIPPED_FILES if "/" not in f)}
# Development files that must never ship, wherever they are.
NEVER = (".venv", ".build", ".state", ".cache", ".pytest_cache", "__pycache__", "benchmarks", "extensions", "scripts", "inventories", ".ci")
# The tarball is 240 KB (820 KB unpacked) at 0.2.0. Twice that leaves room for the collection to grow,
# while build or tool output that slipped past build_ignore (a virtual environment, a built image, a
# benchmark's data) is far larger; earlier tarballs and caches are caught by name (NEVER).
MAX_TARBALL_BYTES = 512 * 1024


def _run(cmd, env, cwd):
    return subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def _checkout_files(directory):
    """The files of one of the checkout's directories, relative to the checkout, without Python's caches."""
    return {
        str(path.relative_to(REPO))
        for path in (REPO / directory).rglob("*")
        if (path.is_file() or path.is_symlink()) and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


@pytest.fixture(scope="module", name="tarball")
def _tarball(tmp_path_factory):
    """The collection tarball, built from the checkout as a user or a release would build it."""
    out = tmp_path_factory.mktemp("build")
    build = _run([str(BIN / "ansible-galaxy"), "collection", "build", str(REPO), "--output-path", str(out)], None, out)
    assert build.returncode == 0, build.stderr
    version = yaml.safe_load((REPO / "galaxy.yml").read_text(encoding="utf-8"))["version"]
    # The name README.md and docs/awx.md give (systemd_s3-backup-<version>.tar.gz).
    return out / f"systemd_s3-backup-{version}.tar.gz"


def test_tarball_holds_what_users_need_and_nothing_else(tarball):
    with tarfile.open(tarball) as archive:
        members = {member.name: member for member in archive.getmembers()}
    files = {name for name, member in members.items() if not member.isdir()}

    shipped = set(SHIPPED_FILES).union(*(_checkout_files(d) for d in SHIPPED_DIRS))
    assert not shipped - files, f"missing from the tarball (galaxy.yml's build_ignore leaves them out): {sorted(shipped - files)}"

    unexpected_top = sorted({name.split("/")[0] for name in members} - TOP_LEVEL)
    assert not unexpected_top, f"not part of the collection: {unexpected_top}; add them to galaxy.yml's build_ignore (or, if users need them, to this test)"
    development = sorted(name for name in members if set(name.split("/")) & set(NEVER) or name.endswith((".pyc", ".tar.gz")))
    assert not development, f"development files in the tarball: {development[:10]}"
    hidden = sorted(name for name in members if any(part.startswith(".") for part in name.split("/")))
    assert not hidden, f"hidden files in the tarball: {hidden[:10]}"
    # Of tests/, only the sanity ignore files; of changelogs/, only the released history and its config.
    assert not [name for name in files if name.startswith("tests/") and not name.startswith("tests/sanity/ignore-")]
    assert {name for name in files if name.startswith("changelogs/")} == {"changelogs/changelog.yaml", "changelogs/config.yaml"}

    # The runner's contract.py stays a link to the collection's one contract (one home per idea).
    link = members["roles/jobs/files/runner/systemd_s3_backup/contract.py"]
    assert link.issym() and link.linkname == "../../../../../plugins/module_utils/contract.py"

    size = tarball.stat().st_size
    largest = sorted(((m.size, n) for n, m in members.items()), reverse=True)[:5]
    assert size <= MAX_TARBALL_BYTES, f"tarball is {size} bytes, over {MAX_TARBALL_BYTES}; largest members: {largest}"


def test_build_install_and_document(tarball, tmp_path):
    # Only the freshly installed copy is visible; amazon.aws comes from the ansible package.
    cols = tmp_path / "collections"
    env = _isolated_env({"ANSIBLE_COLLECTIONS_PATH": str(cols)})
    install = _run([str(BIN / "ansible-galaxy"), "collection", "install", str(tarball), "-p", str(cols), "--offline"], env, tmp_path)
    assert install.returncode == 0, install.stdout + install.stderr
    assert (cols / "ansible_collections/systemd_s3/backup/MANIFEST.json").exists()

    for module in MODULES:
        doc = _run([str(BIN / "ansible-doc"), "--json", f"systemd_s3.backup.{module}"], env, tmp_path)
        assert doc.returncode == 0, doc.stderr
        data = json.loads(doc.stdout)[f"systemd_s3.backup.{module}"]
        options = data["doc"]["options"]
        # The amazon.aws connection options, as every AWS module has them.
        for option in ("profile", "region", "endpoint_url", "access_key", "secret_key", "session_token", "validate_certs"):
            assert option in options, (module, option)
        assert data["examples"] and data["return"]

    role_doc = _run([str(BIN / "ansible-doc"), "-t", "role", "--json", "systemd_s3.backup.aws"], env, tmp_path)
    assert role_doc.returncode == 0, role_doc.stderr
    for name in ("access_policy", "check_policy", "prune_policy"):
        filter_doc = _run([str(BIN / "ansible-doc"), "-t", "filter", "--json", f"systemd_s3.backup.{name}"], env, tmp_path)
        assert filter_doc.returncode == 0, filter_doc.stderr
