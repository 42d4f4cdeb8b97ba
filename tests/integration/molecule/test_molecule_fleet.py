"""The host side on real systemd hosts: the molecule scenario (extensions/molecule/default) run
by scripts/molecule.sh against the endpoint that enforces IAM as AWS does. Its verify.yml proves the
backups; this test adds that nothing the run printed holds a host's secret key, and that AWS would
have authorized every request the hosts' and the restore's principals made (the endpoint's audit)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import REPO, register_audit_log, run_molecule, secret_keys

pytestmark = pytest.mark.fleet


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("apt-get"), reason="needs root on Debian to run Docker and build the host image")
def test_molecule_scenario_on_real_systemd_hosts(tmp_path):
    credentials = tmp_path / "credentials"
    log_path = REPO / ".build" / "molecule-test.log"
    status, output = run_molecule("test", log_path=log_path, env={"BACKUP_TEST_CREDENTIALS_DIR": str(credentials)})
    assert status == 0, f"molecule test failed (whole log: {log_path}):\n{output[-6000:]}"

    secrets = secret_keys(credentials)
    assert len(secrets) == 4, "every host got a key, and the fleet's alert publisher its own"
    for secret in secrets:
        assert secret not in output, f"a host's secret key appears in the molecule output ({log_path})"
    passphrase = (REPO / "extensions/molecule/default/files/test-passphrase.txt").read_text().strip()
    assert passphrase not in output, f"a job's passphrase appears in the molecule output ({log_path})"
    assert "AGE-SECRET-KEY-" not in output
    gpg_secret = (REPO / "extensions/molecule/default/files/duplicity-test-key.sec.asc").read_text().splitlines()[2]
    assert gpg_secret not in output, f"the operator's GPG secret key appears in the molecule output ({log_path})"

    audit = REPO / ".build" / "endpoint-molecule" / "audit.jsonl"
    register_audit_log(audit)
    records = [json.loads(line) for line in audit.read_text().splitlines() if line.strip()]
    assert {record["principal"] for record in records} >= {"backup-db1", "backup-app1", "backup-files1"}, "the hosts' own keys were audited"
    refused = [record for record in records if any(action["decision"] != "allow" for action in record["actions"])]
    assert not refused, f"{len(refused)} request(s) AWS would refuse, e.g. {refused[0]}"
