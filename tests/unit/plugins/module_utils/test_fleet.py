"""A fleet's principals against the account: what a run would create, who left, and IAM's quotas."""

from __future__ import annotations

import pytest

from ansible_collections.systemd_s3.backup.plugins.module_utils import fleet
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError

SUMMARY = {"Users": 4700, "UsersQuota": 5000, "Policies": 1200, "PoliciesQuota": 1500, "Roles": 990, "RolesQuota": 1000, "InstanceProfiles": 10,
           "InstanceProfilesQuota": 1000}


def test_missing_and_departed_principals():
    missing, departed = fleet.plan(["backup-a", "backup-b"], ["backup-b", "backup-old", "someone-else"], "backup-")
    assert (missing, departed) == (["backup-a"], ["backup-old"])  # not someone-else: not one of the fleet's names


def test_a_fleet_that_fits_has_no_problem():
    assert fleet.quota_problems(fleet.capacity(SUMMARY, "user", 300)) == []


def test_users_past_the_hard_limit_fail_with_the_numbers_and_the_way_out():
    problems = fleet.quota_problems(fleet.capacity(dict(SUMMARY, Policies=0), "user", 301))
    assert problems == [
        "The fleet needs 301 more Users and the account has 4700 of 5000 (300 free): nothing was created. IAM users per account are a hard limit"
        " of 5,000: use principal kind role with instance profiles (EC2), or one principal for the fleet (docs/fleet-scale.md)"
    ]


def test_principals_take_no_managed_policy_only_the_fleets_shared_one_does():
    full = dict(SUMMARY, Users=0, Policies=1500)
    assert fleet.quota_problems(fleet.capacity(full, "user", 301)) == []  # their policies are inline
    problems = fleet.quota_problems(fleet.capacity(full, "user", 301, new_policies=1))
    assert len(problems) == 1 and "1 more Policies" in problems[0] and "Customer managed policies per account" in problems[0]


def test_roles_count_roles_policies_and_instance_profiles():
    report = fleet.capacity(SUMMARY, "role", 11)
    assert set(report) == {"Roles", "Policies", "InstanceProfiles"}
    assert [p.split(" and ")[0] for p in fleet.quota_problems(report)] == ["The fleet needs 11 more Roles"]


def test_nothing_to_create_needs_no_room():
    full = dict(SUMMARY, Users=5000, Policies=1500)
    assert fleet.quota_problems(fleet.capacity(full, "user", 0)) == []


def test_fleet_principals_from_the_inventory():
    hostvars = {
        "web1": {"jobs_list": [{"name": "repos", "method": "duplicity"}, {"name": "db", "method": "stream"}, {"method": "duplicity"}]},
        "db 1": {"backup_permissions": ["backup", "restore"], "backup_source_ip": ["203.0.113.7"], "jobs_list": None},
    }
    assert fleet.fleet_principals(["web1", "db 1"], hostvars, "hosts", name_prefix="backup-", credentials_dir="/keys") == [
        {"name": "backup-web1", "prefix": "hosts/web1", "duplicity_jobs": ["repos"], "credentials_path": "/keys/web1.ini"},
        {"name": "backup-db-1", "prefix": "hosts/db 1", "permissions": ["backup", "restore"], "source_ip": ["203.0.113.7"], "duplicity_jobs": [],
         "credentials_path": "/keys/db 1.ini"},
    ]
    assert "credentials_path" not in fleet.fleet_principals(["web1"], hostvars, "hosts")[0]


def test_fleet_principals_name_the_host_and_variable_of_a_mistake():
    with pytest.raises(InputError, match=r"aws_backup_hosts: web9 is not an inventory host"):
        fleet.fleet_principals(["web9"], {}, "hosts")
    with pytest.raises(InputError, match=r"web1: backup_permissions: is 'backup', not a list\. Write a list, e.g\. backup_permissions: \[backup, restore\]"):
        fleet.fleet_principals(["web1"], {"web1": {"backup_permissions": "backup"}}, "hosts")
    with pytest.raises(InputError, match=r"aws_backup_credentials_dir: is empty"):
        fleet.fleet_principals(["web1"], {"web1": {}}, "hosts", credentials_dir="")
