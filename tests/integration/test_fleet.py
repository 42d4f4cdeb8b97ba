"""The host side on real systemd hosts: the molecule scenario (extensions/molecule/default) run
by scripts/molecule.sh. Its verify.yml proves the backups; this test adds that nothing the run
printed holds a host's secret key."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess

import pytest

from conftest import REPO

pytestmark = pytest.mark.fleet


def _secrets(directory):
    found = []
    for path in sorted(directory.glob("*.ini")):
        parser = configparser.ConfigParser()
        parser.read(path)
        found.append(parser["default"]["aws_secret_access_key"])
    return found


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("apt-get"), reason="needs root on Debian to run Docker and build the host image")
def test_molecule_scenario_on_real_systemd_hosts(tmp_path):
    credentials = tmp_path / "credentials"
    log_path = REPO / ".build" / "molecule-test.log"
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "molecule.sh"), "test"],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "BACKUP_TEST_CREDENTIALS_DIR": str(credentials)},
        timeout=3600,
    )
    output = proc.stdout + proc.stderr
    log_path.write_text(output)
    assert proc.returncode == 0, f"molecule test failed (whole log: {log_path}):\n{output[-6000:]}"

    secrets = _secrets(credentials)
    assert len(secrets) == 3, "every host got a key"
    for secret in secrets:
        assert secret not in output, f"a host's secret key appears in the molecule output ({log_path})"
    passphrase = (REPO / "extensions/molecule/default/files/test-passphrase.txt").read_text().strip()
    assert passphrase not in output, f"a job's passphrase appears in the molecule output ({log_path})"
    assert "AGE-SECRET-KEY-" not in output
