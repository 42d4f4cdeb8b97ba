"""The one home of a backup user's key decisions and of the credentials file format."""

from __future__ import annotations

import datetime
import os
import stat

import pytest
from ansible_collections.systemd_s3.backup.plugins.module_utils import access_keys

NOW = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
OPTIONS = {"rotate_access_key": False, "access_key_max_age_days": None, "credentials_path": "/c", "retire_previous_access_keys": False}


def key(key_id, status="Active", age=1):
    return {"AccessKeyId": key_id, "Status": status, "CreateDate": NOW - datetime.timedelta(days=age)}


def test_key_to_make_room():
    older, newer = key("AKOLD", age=10), key("AKNEW", age=1)
    assert access_keys.key_to_make_room([older, newer], "AKOLD") is newer
    assert access_keys.key_to_make_room([older, newer], "AKNEW") is older
    assert access_keys.key_to_make_room([older, newer], None) is older
    inactive = key("AKOFF", "Inactive", age=1)
    assert access_keys.key_to_make_room([older, inactive], "AKOLD") is inactive
    assert access_keys.key_to_make_room([key("AKHELD", "Inactive"), older], "AKHELD")["AccessKeyId"] == "AKHELD"


def test_rotation_reason_by_age():
    options = dict(OPTIONS, access_key_max_age_days=90, credentials_path=None)
    old, young = key("AKOLD", age=91), key("AKYOUNG", age=89)
    assert access_keys.rotation_reason([old], None, options, NOW) == "newest active key is older than 90 days"
    assert access_keys.rotation_reason([old, young], None, options, NOW) is None
    assert access_keys.rotation_reason([young, dict(old, Status="Inactive")], None, options, NOW) is None
    assert access_keys.rotation_reason([], None, options, NOW) == "the user has no access key"


def test_plan_keeps_the_held_key_and_lists_the_others():
    older, held = key("AKOLD", age=10), key("AKHELD", age=1)
    plan = access_keys.plan_keys("backup-web1", [older, held], "AKHELD", OPTIONS, NOW)
    assert (plan["create"], plan["current"], plan["kept"], plan["retire"]) == (None, held, [older], [])
    retiring = access_keys.plan_keys("backup-web1", [older, held], "AKHELD", dict(OPTIONS, retire_previous_access_keys=True), NOW)
    assert (retiring["current"], retiring["kept"], retiring["retire"]) == (held, [], [older])


def test_plan_replaces_a_lost_key_making_room_with_the_inactive_one():
    inactive, other = key("AKOFF", "Inactive", age=5), key("AKOTHER", age=3)
    plan = access_keys.plan_keys("backup-web1", [inactive, other], None, OPTIONS, NOW)
    assert plan["create"] == "the credentials file holds no active key of the user"
    assert (plan["make_room"], plan["current"], plan["kept"]) == (inactive, None, [other])


def test_a_lost_key_is_not_replaced_by_deleting_an_active_key_a_host_may_use():
    # Mid-rotation (the previous key not retired yet), the control node lost its credentials file: the host runs with one of them.
    previous, deployed = key("AKPREVIOUS", age=40), key("AKDEPLOYED", age=3)
    for held in (None, "AKDELETED"):
        with pytest.raises(access_keys.NoRoomForKey) as refused:
            access_keys.plan_keys("backup-web1", [previous, deployed], held, OPTIONS, NOW)
        message = str(refused.value)
        assert message.startswith("backup-web1: a new access key is needed (the credentials file holds no active key of the user)")
        assert "AKPREVIOUS made 2029-11-22" in message and "AKDEPLOYED made 2029-12-29" in message
        assert "Put the key the host uses into /c" in message and "--user-name backup-web1 --access-key-id ID" in message
    # A rotation asked for then is refused the same way; with the held key active it waits for retire_keys.yml instead.
    with pytest.raises(access_keys.NoRoomForKey):
        access_keys.plan_keys("backup-web1", [previous, deployed], None, dict(OPTIONS, rotate_access_key=True), NOW)


def test_retiring_never_creates_a_key_nor_deletes_one_the_host_may_use():
    # The credentials file is lost (or holds an inactive key): the host still runs with one of these.
    deployed = key("AKDEPLOYED", age=3)
    plan = access_keys.plan_keys("backup-web1", [deployed], None, dict(OPTIONS, retire_previous_access_keys=True), NOW)
    assert (plan["create"], plan["retire"], plan["kept"], plan["make_room"]) == (None, [], [deployed], None)
    assert plan["warning"].startswith("backup-web1: no key retired (the credentials file holds no active key of the user)")


def test_plan_does_not_rotate_over_an_unretired_previous_key():
    plan = access_keys.plan_keys("backup-web1", [key("AKA", age=5), key("AKB", age=1)], "AKB", dict(OPTIONS, rotate_access_key=True), NOW)
    assert plan["create"] is None and "retire_keys.yml" in plan["warning"]


def test_credentials_file_records_the_key_creation(tmp_path):
    path = tmp_path / "sub" / "web1.ini"
    access_keys.write_credentials(path, {"AccessKeyId": "AKIA1", "SecretAccessKey": "s3cr=t", "CreateDate": NOW.replace(microsecond=123)})
    assert access_keys.read_held_key(path) == ("AKIA1", "s3cr=t", NOW)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    # 0.2.0's files have no date; a missing or broken file holds nothing.
    path.write_text("[default]\naws_access_key_id = AKIA2\naws_secret_access_key = x\n")
    assert access_keys.read_held_key(path) == ("AKIA2", "x", None)
    path.write_text("[default]\naws_access_key_id = AKIA3\n")  # no secret: no key
    assert access_keys.read_held_key(path) == (None, None, None)
    path.write_text("not ini")
    assert access_keys.read_held_key(path) == (None, None, None)
    assert access_keys.read_held_key(tmp_path / "missing") == (None, None, None)


REPORT = (
    "user,arn,user_creation_time,password_enabled,access_key_1_active,access_key_1_last_rotated,access_key_2_active,access_key_2_last_rotated\n"
    "<root_account>,arn:aws:iam::1:root,2029-01-01T00:00:00+00:00,not_supported,false,N/A,false,N/A\n"
    "backup-web1,arn:aws:iam::1:user/b/backup-web1,2029-01-01T00:00:00+00:00,false,true,2029-12-31T00:00:00+00:00,false,N/A\n"
    "backup-web2,arn:aws:iam::1:user/b/backup-web2,2029-01-01T00:00:00+00:00,false,false,2029-12-31T00:00:00+00:00,true,2029-12-31T12:00:00Z\n"
)


def test_credential_report_confirms_only_a_single_active_held_key():
    report = access_keys.parse_credential_report(REPORT.encode())
    created = datetime.datetime(2029, 12, 31, tzinfo=datetime.timezone.utc)
    assert report["<root_account>"] == []
    assert access_keys.report_confirms(report["backup-web1"], created)
    assert not access_keys.report_confirms(report["backup-web1"], created + datetime.timedelta(seconds=1))  # another key
    assert not access_keys.report_confirms(report["backup-web1"], None)  # a file from before 0.3.0
    assert not access_keys.report_confirms(report["backup-web2"], created)  # two keys, the held one inactive
    assert not access_keys.report_confirms(report.get("backup-web3"), created)  # newer than the report
    assert report["backup-web2"][1] == {"active": True, "created": created + datetime.timedelta(hours=12)}
