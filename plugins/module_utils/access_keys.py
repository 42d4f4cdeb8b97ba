# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A backup user's access keys: the credentials file on the control node that holds one, and the
decision which key to create, keep or delete. One home for the access module (one principal) and
the fleet_access module (all of them); pure logic, the modules make the requests.

The credentials file is an AWS shared-credentials file ([default] profile) that also records when
its key was created (``KEY_CREATED_OPTION``; botocore and the AWS CLI ignore options they do not
know). With that date, IAM's credential report, one CSV for every user of the account, tells
whether the key is still active without a ListAccessKeys request per user."""

from __future__ import annotations

import configparser
import csv
import datetime
import io
import os
import tempfile

from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError

IAM_MAX_ACCESS_KEYS = 2
# Shown in a diff for a key that check mode would create.
NEW_KEY_PLACEHOLDER = "(new access key)"
KEY_CREATED_OPTION = "systemd_s3_backup_key_created"
# The reasons of rotation_reason that are a rotation (rather than a host without a usable key).
ROTATIONS = ("rotation requested", "newest active key is older than")


class NoRoomForKey(Exception):
    """A new key is needed, but making room for it under IAM's limit would delete a key a host may use."""


def check_credentials_path(path, field="credentials_path"):
    """Refuses a credentials path that could not be written, before a key is made for it."""
    fix = "Use a file path in a directory the module can write to, e.g. /etc/systemd-s3-backup/credentials"
    if os.path.isdir(path):
        raise InputError(field, f"{path} is a directory", fix)
    existing = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(field, f"cannot create or replace files in {existing}", fix)


def read_held_key(path):
    """(key ID, secret, creation time or None) of the key in a credentials file, or (None, None, None)
    when the file is missing, unreadable or lacks the ID or the secret. The time is None in files
    written by 0.1.x."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
        key_id = parser.get("default", "aws_access_key_id", fallback=None)
        secret = parser.get("default", "aws_secret_access_key", fallback=None)
        created = parser.get("default", KEY_CREATED_OPTION, fallback=None)
    except (OSError, UnicodeDecodeError, configparser.Error):
        return None, None, None
    if not key_id or not secret:  # half a key is no key
        return None, None, None
    try:
        created = to_seconds(datetime.datetime.fromisoformat(created)) if created else None
    except ValueError:
        created = None
    return key_id, secret, created


def read_key_id(path):
    """The access key ID in a credentials file, or None when the file is missing or unreadable."""
    return read_held_key(path)[0]


def write_credentials(path, key):
    """Writes the key (AccessKeyId, SecretAccessKey, CreateDate) as the [default] profile, atomically
    and readable by the owner only."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, temp_path = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(
                f"[default]\naws_access_key_id = {key['AccessKeyId']}\naws_secret_access_key = {key['SecretAccessKey']}\n"
                f"{KEY_CREATED_OPTION} = {to_seconds(key['CreateDate']).isoformat()}\n"
            )
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp_path, path)
    except BaseException:
        if os.path.exists(temp_path):
            os.unlink(temp_path)
        raise


def to_seconds(moment):
    """An aware UTC time to the second: the precision of the credential report."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc).replace(microsecond=0)


def parse_credential_report(content):
    """{user name: [{"active": bool, "created": time or None}, ...]} from IAM's credential report
    (CSV; a key slot never used says N/A). A slot's last_rotated is its key's creation time."""
    text = content.decode("utf-8") if isinstance(content, bytes) else content
    users = {}
    for row in csv.DictReader(io.StringIO(text)):
        slots = []
        for number in (1, 2):
            rotated = row.get(f"access_key_{number}_last_rotated") or "N/A"
            if rotated in ("N/A", "not_supported", "no_information"):
                continue
            try:
                created = to_seconds(datetime.datetime.fromisoformat(rotated.replace("Z", "+00:00")))
            except ValueError:
                continue
            slots.append({"active": row.get(f"access_key_{number}_active") == "true", "created": created})
        users[row["user"]] = slots
    return users


def report_confirms(slots, held_created):
    """Whether the credential report shows the held key active and it as the user's only key: then
    nothing about the user's keys needs a request. Anything else (a report older than the key, a
    deleted or deactivated key, a second key) is looked at with ListAccessKeys."""
    if slots is None or held_created is None or len(slots) != 1:
        return False
    return slots[0]["active"] and slots[0]["created"] == held_created


def rotation_reason(keys, held_key_id, options, now):
    """Why a new access key is needed, or None. ``keys`` are the user's keys, oldest first;
    ``held_key_id`` is the key in the credentials file (None when missing or unreadable); ``options``
    has rotate_access_key, access_key_max_age_days and credentials_path."""
    active = [k for k in keys if k["Status"] == "Active"]
    if options["rotate_access_key"]:
        return "rotation requested"
    max_age = options["access_key_max_age_days"]
    if max_age and active and now - active[-1]["CreateDate"] > datetime.timedelta(days=max_age):
        return f"newest active key is older than {max_age} days"
    if options["credentials_path"]:
        if held_key_id not in {k["AccessKeyId"] for k in active}:
            return "the credentials file holds no active key of the user"
        return None
    if not keys:
        return "the user has no access key"
    return None


def key_to_make_room(keys, held_key_id):
    """The key to delete when IAM's limit leaves no room for a new one: never the one in the
    credentials file while it is active; inactive keys first, then the oldest (which plan_keys
    refuses to delete while no active key is in the file: see NoRoomForKey)."""
    return min(keys, key=lambda k: (k["AccessKeyId"] == held_key_id and k["Status"] == "Active", k["Status"] == "Active", k["CreateDate"]))


def key_report(plan, current):
    """What a module reports about a user's keys once ``plan`` is carried out and ``current`` is the
    key the host uses (None when check mode would create it): the result's fields, and the key IDs
    the diff shows (a placeholder for the key check mode would create)."""
    in_use = sorted(plan["kept"] + ([current] if current else []), key=lambda k: k["CreateDate"])
    diff_ids = [k["AccessKeyId"] for k in in_use] + ([NEW_KEY_PLACEHOLDER] if plan["create"] and not current else [])
    fields = {
        "access_key_id": current["AccessKeyId"] if current else None,
        "create_date": current["CreateDate"].isoformat() if current else None,
        "previous_access_key_ids": [k["AccessKeyId"] for k in plan["kept"]],
    }
    return fields, diff_ids


def plan_keys(name, keys, held_key_id, options, now):
    """What to do with a user's keys (oldest first): a dict of
    - ``create``: why a new key is made, or None;
    - ``make_room``: the key deleted first to stay within IAM's two keys, or None;
    - ``current``: the key the host uses after this run (None when a new one is made);
    - ``retire``: the keys deleted because options["retire_previous_access_keys"];
    - ``kept``: the other keys that stay (a host may still use one);
    - ``warning``: why a wanted rotation was not done, or None.
    Raises NoRoomForKey where a new key would need an active key deleted that a host may use."""
    plan = {"create": rotation_reason(keys, held_key_id, options, now), "make_room": None, "retire": [], "warning": None}
    if options["retire_previous_access_keys"] and plan["create"] and not plan["create"].startswith(ROTATIONS):
        # The host runs with a key the control node no longer knows: a new key now would exist on the
        # control node only, and retiring the others would take the host's working key away.
        plan.update(
            create=None,
            current=None,
            kept=list(keys),
            warning=f"{name}: no key retired ({plan['create']}): the host may still use any of them. Run site.yml to give it a key first",
        )
        return plan
    active = [k for k in keys if k["Status"] == "Active"]
    credentials_path = options["credentials_path"]
    held_active = not credentials_path or held_key_id in {k["AccessKeyId"] for k in active}
    if plan["create"] and plan["create"].startswith(ROTATIONS) and len(active) >= IAM_MAX_ACCESS_KEYS and held_active:
        # An earlier rotation's previous key is not retired yet: the host may still use it (its jobs
        # play failed, or a job still ran), so rotating again would have to delete a key in use.
        plan["warning"] = (
            f"{name}: not rotating ({plan['create']}): the user still has {len(active)} active keys, an earlier rotation's"
            " previous key not yet retired. Run playbooks/retire_keys.yml once the host runs with its new key, then rotate again"
        )
        plan["create"] = None
    kept = list(keys)
    if plan["create"] is None:
        plan["current"] = next(k for k in keys if k["AccessKeyId"] == held_key_id) if credentials_path else keys[-1]
        kept.remove(plan["current"])
    else:
        plan["current"] = None
        if len(kept) >= IAM_MAX_ACCESS_KEYS:
            plan["make_room"] = key_to_make_room(kept, held_key_id)
            if plan["make_room"]["Status"] == "Active" and not held_active:
                # The control node holds none of the active keys (its credentials file lost, or stale): either may be the
                # one a host runs with, and deleting it would stop that host's backups and their alerts.
                raise NoRoomForKey(
                    f"{name}: a new access key is needed ({plan['create']}), but the user has IAM's {IAM_MAX_ACCESS_KEYS} keys already, "
                    f"both active ({', '.join(k['AccessKeyId'] + ' made ' + k['CreateDate'].isoformat() for k in kept)}), and a host may use "
                    f"either: nothing was deleted. Put the key the host uses into {credentials_path}, or delete (or deactivate) the one "
                    f"no host uses: aws iam delete-access-key --user-name {name} --access-key-id ID. Then run again"
                )
            kept.remove(plan["make_room"])
    if options["retire_previous_access_keys"]:
        plan["retire"], kept = kept, []
    plan["kept"] = kept
    return plan
