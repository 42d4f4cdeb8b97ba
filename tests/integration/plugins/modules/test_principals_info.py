"""systemd_s3.backup.principals_info against moto: which of a fleet's principals exist, which would be
created, which belong to hosts that left, and the account's quotas, in a few read-only requests."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

MODULE = "systemd_s3.backup.principals_info"


@pytest.fixture
def fleet_path(moto, unique):
    """Three backup users of a fleet under a path of their own, and one user of something else."""
    iam = moto.client("iam")
    path = f"/fleet-{unique}/"
    for name in ("backup-web1", "backup-web2", "backup-gone"):
        iam.create_user(UserName=name + unique, Path=path)
    iam.create_user(UserName=f"ci-{unique}", Path=path)
    return path


def test_reports_missing_and_departed_principals_and_quotas(moto, run_module, unique, fleet_path):
    before = moto.requests()
    names = [f"backup-web1{unique}", f"backup-web2{unique}", f"backup-web3{unique}"]
    result = run_module(MODULE, {**moto.module_args(), "names": names, "path": fleet_path, "name_prefix": "backup-"})
    assert result["changed"] is False, result
    assert result["missing"] == [f"backup-web3{unique}"]
    assert result["departed"] == [f"backup-gone{unique}"]  # not ci-...: not one of the fleet's names
    assert result["capacity"]["Users"]["needed"] == 1 and result["capacity"]["Users"]["quota"] == 5000
    assert result["capacity"]["Policies"]["needed"] == 0  # inline policies (fleet_access)
    assert result["quota_problems"] == []
    assert moto.requests() - before == 2  # one listing page, one GetAccountSummary


def test_roles_are_read_with_their_own_listing(moto, run_module, unique):
    iam = moto.client("iam")
    path = f"/roles-{unique}/"
    iam.create_role(RoleName=f"backup-db1{unique}", Path=path, AssumeRolePolicyDocument="{}")
    result = run_module(MODULE, {**moto.module_args(), "kind": "role", "names": [f"backup-db1{unique}"], "path": path})
    assert (result["existing"], result["missing"], result["departed"]) == ([f"backup-db1{unique}"], [], [])
    assert set(result["capacity"]) == {"Roles", "Policies", "InstanceProfiles"}


def test_a_bad_path_fails_before_any_request(moto, run_module):
    before = moto.requests()
    result = run_module(MODULE, {**moto.module_args(), "names": ["a"], "path": "no-slashes"})
    assert result.get("failed") and "path" in result["msg"], result
    assert moto.requests() == before


def test_a_fleet_past_the_accounts_quota_is_reported_with_the_numbers(moto, run_module, unique):
    """moto reports AWS's default quotas: 1,001 new EC2 hosts need more roles and instance profiles than
    an account has by default (the fleet_access module fails on them before it creates anything)."""
    names = [f"b{unique}{number}" for number in range(1001)]
    result = run_module(MODULE, {**moto.module_args(), "kind": "role", "names": names, "path": f"/quota-{unique}/", "name_prefix": "b"})
    assert len(result["missing"]) == 1001
    profiles, roles = result["capacity"]["InstanceProfiles"]["used"], result["capacity"]["Roles"]["used"]
    assert [p.split(":")[0] for p in result["quota_problems"]] == [
        f"The fleet needs 1001 more InstanceProfiles and the account has {profiles} of 1000 ({1000 - profiles} free)",
        f"The fleet needs 1001 more Roles and the account has {roles} of 1000 ({1000 - roles} free)",
    ]
    assert "Roles per account" in result["quota_problems"][1]
