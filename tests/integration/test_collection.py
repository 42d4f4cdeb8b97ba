"""The collection as users get it: built with ansible-galaxy, installed from the tarball, and
documented through ansible-doc."""

from __future__ import annotations

import json
import subprocess
import tarfile

from conftest import BIN, REPO, _isolated_env

MODULES = ["bucket", "access", "alerts", "backups_info", "backups_check"]


def _run(cmd, env, cwd):
    return subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_build_install_and_document(tmp_path):
    build = _run([str(BIN / "ansible-galaxy"), "collection", "build", str(REPO), "--output-path", str(tmp_path)], None, tmp_path)
    assert build.returncode == 0, build.stderr
    tarball = next(tmp_path.glob("systemd_s3-backup-*.tar.gz"))
    names = tarfile.open(tarball).getnames()
    assert "plugins/modules/bucket.py" in names
    assert "roles/aws/meta/argument_specs.yml" in names
    assert not [n for n in names if n.startswith((".venv", ".build", ".state", "scripts"))]

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
    for name in ("access_policy", "check_policy"):
        filter_doc = _run([str(BIN / "ansible-doc"), "-t", "filter", "--json", f"systemd_s3.backup.{name}"], env, tmp_path)
        assert filter_doc.returncode == 0, filter_doc.stderr
