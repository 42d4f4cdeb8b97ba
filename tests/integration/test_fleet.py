"""The host side on real systemd hosts: the molecule scenario (extensions/molecule/default) run
by scripts/molecule.sh. Its verify.yml proves the backups; this test adds that nothing the run
printed holds a host's secret key."""

from __future__ import annotations

import os
import shutil

import pytest

from conftest import REPO, run_molecule, secret_keys

pytestmark = pytest.mark.fleet


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("apt-get"), reason="needs root on Debian to run Docker and build the host image")
def test_molecule_scenario_on_real_systemd_hosts(tmp_path):
    credentials = tmp_path / "credentials"
    log_path = REPO / ".build" / "molecule-test.log"
    status, output = run_molecule("test", log_path=log_path, env={"BACKUP_TEST_CREDENTIALS_DIR": str(credentials)})
    assert status == 0, f"molecule test failed (whole log: {log_path}):\n{output[-6000:]}"

    secrets = secret_keys(credentials)
    assert len(secrets) == 3, "every host got a key"
    for secret in secrets:
        assert secret not in output, f"a host's secret key appears in the molecule output ({log_path})"
    passphrase = (REPO / "extensions/molecule/default/files/test-passphrase.txt").read_text().strip()
    assert passphrase not in output, f"a job's passphrase appears in the molecule output ({log_path})"
    assert "AGE-SECRET-KEY-" not in output
    gpg_secret = (REPO / "extensions/molecule/default/files/duplicity-test-key.sec.asc").read_text().splitlines()[2]
    assert gpg_secret not in output, f"the operator's GPG secret key appears in the molecule output ({log_path})"
