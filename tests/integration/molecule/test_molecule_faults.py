"""The fault suite on a real systemd host: the molecule scenario extensions/molecule/faults, run by
scripts/molecule.sh. Its verify.yml injects every fault and bad input and checks each against
faults.yml; this test runs it, writes docs/reliability.md from its results, and checks that nothing
the run printed holds a secret key."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import REPO, run_molecule, secret_keys

pytestmark = pytest.mark.fleet

SCENARIO = REPO / "extensions" / "molecule" / "faults"
DOC = REPO / "docs" / "reliability.md"


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("apt-get"), reason="needs root on Debian to run Docker and build the host image")
def test_fault_suite_on_a_real_systemd_host(tmp_path):
    credentials = tmp_path / "credentials"
    results_path = REPO / ".build" / "fault-results.json"
    log_path = REPO / ".build" / "molecule-faults.log"
    results_path.unlink(missing_ok=True)
    started = time.monotonic()
    status, output = run_molecule(
        "test", "-s", "faults", log_path=log_path, env={"FAULTS_CREDENTIALS_DIR": str(credentials), "FAULTS_RESULTS_FILE": str(results_path)}
    )
    wall_seconds = time.monotonic() - started

    # The document says what happened, also when it is not what should have.
    if results_path.exists():
        render = [sys.executable, str(SCENARIO / "files" / "reliability_doc.py"), str(results_path), str(DOC), f"{wall_seconds:.0f}"]
        subprocess.run(render, check=True)
    assert status == 0, f"the fault suite failed (whole log: {log_path}, results: {results_path}):\n{output[-6000:]}"

    results = json.loads(results_path.read_text())
    assert len(results["faults"]) >= 15 and len(results["bad_inputs"]) >= 10
    missed = [r["id"] for r in results["faults"] + results["bad_inputs"] if not r["ok"]]
    assert missed == [], f"not as expected: {missed} (see {DOC})"

    # The host's key (revoked and replaced during the suite), the fleet's alert publisher key and the suite's admin key.
    secrets = secret_keys(credentials)
    assert len(secrets) == 4, "the host's key, the revoked one, the alert publisher's and the suite's admin key are all there"
    for secret in secrets:
        assert secret not in output, f"a secret key appears in the molecule output ({log_path})"
