# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which backups a bucket holds, from a key listing alone: runner runs (a run folder is a backup only
once its manifest.json, the commit marker, is stored) and duplicity backup sets (complete once their
manifest is stored, usable only with an unbroken chain down to a full backup); then the newest good
backup, the backup a restore at a given time would use, and how stale a job is. No AWS calls here.

Times a host writes (run folder names, a manifest's started/finished, duplicity's file names) are
claims a leaked host key can forge. S3's own LastModified of the manifest, which no host key can set,
checks them: a backup whose claims lie after it (or after now) is refused as suspicious (see
forged_reasons). The backups that pass are ordered by their claims (which survive an operator's copy
of a manifest, unlike LastModified), selected for a time by S3's time, and aged by the earlier of both."""

from __future__ import annotations

import datetime
import json
import re

from ansible_collections.systemd_s3.backup.plugins.module_utils import contract
from ansible_collections.systemd_s3.backup.plugins.module_utils.contract import COLD_STORAGE_CLASSES
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError
from ansible_collections.systemd_s3.backup.plugins.module_utils.policies import normalize_prefix
from ansible_collections.systemd_s3.backup.plugins.module_utils.policies import validate_bucket_name

UTC = datetime.timezone.utc
# The bucket layout and the manifest are the contract's (docs/format.md).
RUN_TIMESTAMP = contract.RUN_FOLDER_FORMAT  # the runner's run folder names, and duplicity's file name times
ISO_FORMAT = contract.ISO_FORMAT  # the manifest's started/finished, and this module's output
MANIFEST = contract.MANIFEST_NAME
SYNC_DATA = contract.SYNC_FOLDER
DUPLICITY = contract.DUPLICITY_FOLDER
LATEST = "latest"
# How far a time a host wrote (a run folder's name, its manifest's started/finished, a duplicity set's
# name) may lie after S3's LastModified of the backup's manifest, or after now, before the backup is
# refused: the clock skew allowed between a host, S3 and the control node. NTP keeps clocks within a
# second; 15 minutes is generous for a host without it, and far less than any useful forgery needs.
CLOCK_SKEW_TOLERANCE = datetime.timedelta(minutes=15)
# A backup is cold when an object of it is in one of COLD_STORAGE_CLASSES (where bucket_config's
# lifecycle puts data objects). INTELLIGENT_TIERING's optional archive tiers are cold too, but a listing
# does not show them (only HeadObject's x-amz-archive-status does).
DEFAULT_STORAGE_CLASS = "STANDARD"  # what a listing without StorageClass means
# What selection and checks need to know of a backup, left out of the module's output.
INTERNAL_FIELDS = ("manifest_read", "manifest_storage_class", "newest_object")

_RUN_FOLDER = contract.RUN_FOLDER
_DUPLICITY_NAME = contract.DUPLICITY_NAME
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")
_DURATION_UNITS = {
    unit: seconds
    for seconds, units in (
        (1, ("", "s", "sec", "second", "seconds")),
        (60, ("m", "min", "minute", "minutes")),
        (3600, ("h", "hr", "hour", "hours")),
        (86400, ("d", "day", "days")),
        (604800, ("w", "week", "weeks")),
    )
    for unit in units
}


# ---------------------------------------------------------------------------------------------- input


def parse_duration(value, field="max_age"):
    """Seconds in a duration such as '26h', '7d', '90min', '1d 12h' or '3600' (seconds)."""
    text = str(value).strip().lower()
    fix = "Use a number with a unit s, min, h, d or w, such as '26h', '7d', '90min' or '1d 12h'"
    position, seconds = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if text[position:match.start()].strip() or match.group(2) not in _DURATION_UNITS:
            raise InputError(field, f"{value!r} is not a duration", fix)
        seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position == 0 or text[position:].strip():
        raise InputError(field, f"{value!r} is not a duration", fix)
    if seconds <= 0:
        raise InputError(field, f"{value!r} must be longer than zero", fix)
    return int(seconds)


def parse_time(value, field="at"):
    """'latest', or a timezone-aware datetime in UTC from ISO 8601 ('2026-11-22T02:00:00Z',
    '2026-11-22T03:00:00+01:00') or a run folder name ('20261122T020000Z')."""
    text = str(value).strip()
    if text.lower() == LATEST:
        return LATEST
    fix = "Use 'latest' or an ISO 8601 time with its zone, such as '2026-11-22T02:00:00Z'"
    try:
        if _RUN_FOLDER.fullmatch(text):
            return datetime.datetime.strptime(text, RUN_TIMESTAMP).replace(tzinfo=UTC)
        # fromisoformat takes 'Z' only from Python 3.11 on.
        moment = datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" and text else text)
    except ValueError:
        raise InputError(field, f"{value!r} is not an ISO 8601 time", fix) from None
    if moment.tzinfo is None:
        # A time without its zone could be meant as local time: too ambiguous for picking a restore.
        raise InputError(field, f"{value!r} has no time zone", fix)
    return moment.astimezone(UTC)


def key_path(value, field):
    """A key prefix as 'a/b' (see policies.normalize_prefix), with a message fit for reading."""
    if not str(value or "").strip("/"):
        raise InputError(field, "must not be empty", "Give the prefix the hosts' backups are stored under, such as 'hosts'")
    return normalize_prefix(str(value), field)


def path_segment(value, field):
    """A host or job name as one key segment: no slash, nothing a key could not hold safely."""
    name = key_path(value, field)
    if "/" in name:
        raise InputError(field, f"{value!r} contains a slash", "Give the bare host or job name, as it appears in the keys")
    return name


def normalize_names(values, field):
    """A list of host or job names, each checked, duplicates dropped; None stays None (all)."""
    if values is None:
        return None
    return sorted({path_segment(value, field) for value in values})


def validate(params):
    """The module's options, checked and converted before any AWS call."""
    return {
        "bucket": validate_bucket_name(params["bucket"], "bucket"),
        "prefix": key_path(params["prefix"], "prefix"),
        "hosts": normalize_names(params["hosts"], "hosts"),
        "jobs": normalize_names(params["jobs"], "jobs"),
        "max_age": parse_duration(params["max_age"]) if params.get("max_age") not in (None, "") else None,
        "at": parse_time(params["at"]) if params.get("at") not in (None, "") else None,
        "include_manifests": params["include_manifests"],
    }


def iso(moment):
    return moment.strftime(ISO_FORMAT) if moment else None


def parse_iso(text):
    """A manifest's 'finished' as a datetime, None when it is not the runner's format."""
    try:
        return datetime.datetime.strptime(str(text), ISO_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def _run_time(name):
    return datetime.datetime.strptime(name, RUN_TIMESTAMP).replace(tzinfo=UTC)


def listed_time(value):
    """A listing's LastModified (botocore gives a datetime) as a UTC datetime; None when absent."""
    if isinstance(value, datetime.datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        return parse_time(value, "LastModified")
    return None


# ---------------------------------------------------------------------------------------------- listing


def skip_sync_data(key, prefix):
    """Where to go on listing when ``key`` is inside a sync job's data/ folder: the StartAfter key
    just past that folder (every key starting '<job>/data/' sorts before '<job>/data0', since '0'
    follows '/'), so a large synced tree costs no further pages. None for any other key."""
    parts = key[len(prefix) + 1:].split("/") if key.startswith(prefix + "/") else []
    if len(parts) > 3 and parts[2] == SYNC_DATA:
        return f"{prefix}/{parts[0]}/{parts[1]}/{SYNC_DATA}0"
    return None


def parse_duplicity_name(name):
    """A duplicity file name as {kind, start, end, part, volume}: kind 'full' or 'incremental',
    start the time the set builds on (None for a full), end its time, part 'volume', 'manifest'
    or 'signatures'. None for any other name."""
    match = _DUPLICITY_NAME.fullmatch(name)
    if not match:
        return None
    kind = match.group("kind").lower()
    incremental = kind in ("inc", "new-signatures")
    if incremental != bool(match.group("second")):
        return None  # an inc without its '.to.' time, or a full with one
    first = _run_time(match.group("first").upper())
    part = "volume" if match.group("volume") else "manifest" if match.group("manifest") else "signatures"
    if part == "signatures" and kind in ("full", "inc") or part != "signatures" and kind.endswith("signatures"):
        return None
    return {
        "kind": "incremental" if incremental else "full",
        "start": first if incremental else None,
        "end": _run_time(match.group("second").upper()) if incremental else first,
        "part": part,
        "volume": int(match.group("volume")) if match.group("volume") else None,
    }


def new_job_listing():
    return {"runs": {}, "duplicity": {}}


def index_listing(objects, prefix):
    """Groups listed objects ({'Key', 'Size', 'LastModified', 'StorageClass'}) under '<prefix>/' by
    (host, job), each as
    {'runs': {folder: {'files': {key: object}, 'manifest_key', 'manifest': object}},
     'duplicity': {(kind, start, end): {'volumes': {key: object}, 'manifest_key', 'manifest': object}}}
    where an object is {'size', 'modified' (S3's LastModified), 'storage_class'}.
    A sync job's data/ keys and duplicity's other files only make the job known. Signatures (needed
    by duplicity's next backup, not by a restore) and keys that follow no layout are ignored."""
    jobs = {}
    for item in objects:
        key = item["Key"]
        if not key.startswith(prefix + "/"):
            continue
        parts = key[len(prefix) + 1:].split("/")
        if len(parts) < 4 or not parts[0] or not parts[1]:
            continue
        host, job, folder, rest = parts[0], parts[1], parts[2], "/".join(parts[3:])
        listed = {
            "size": item.get("Size", 0),
            "modified": listed_time(item.get("LastModified")),
            "storage_class": item.get("StorageClass") or DEFAULT_STORAGE_CLASS,
        }
        if folder == SYNC_DATA:
            jobs.setdefault((host, job), new_job_listing())
        elif _RUN_FOLDER.fullmatch(folder) and rest:
            runs = jobs.setdefault((host, job), new_job_listing())["runs"]
            run = runs.setdefault(folder, {"files": {}, "manifest_key": None, "manifest": None})
            if rest == MANIFEST:
                run.update(manifest_key=key, manifest=listed)
            else:
                run["files"][key] = listed
        elif folder == DUPLICITY and len(parts) == 4:
            sets = jobs.setdefault((host, job), new_job_listing())["duplicity"]
            name = parse_duplicity_name(rest)
            if name and name["part"] != "signatures":
                backup_set = sets.setdefault((name["kind"], name["start"], name["end"]), {"volumes": {}, "manifest_key": None, "manifest": None})
                if name["part"] == "volume":
                    backup_set["volumes"][key] = listed
                else:
                    backup_set.update(manifest_key=key, manifest=listed)
    return jobs


# ---------------------------------------------------------------------------------------------- trust


def forged_reasons(stored, claims, newest_object, now):
    """Why a backup cannot be trusted, as sentences (none: it can). ``stored`` is S3's LastModified
    of its manifest, ``claims`` the (what, time) pairs the host wrote, ``newest_object`` the
    (key, LastModified) of its most recently stored data object or None, ``now`` the control node's
    time. Refused: a claim in the future; a claim after S3 stored the manifest (a run cannot finish
    after its commit); an object stored after the manifest, i.e. changed after the run was committed.
    A manifest stored long after its folder's time is not refused: a long upload looks the same."""
    if stored is None:
        return ["the listing gave no LastModified for its manifest, so its time cannot be checked"]
    reasons = []
    for what, claimed in claims:
        if claimed is None:
            continue
        if claimed > now + CLOCK_SKEW_TOLERANCE:
            reasons.append(f"{what} {iso(claimed)} is in the future")
        elif claimed > stored + CLOCK_SKEW_TOLERANCE:
            reasons.append(f"{what} {iso(claimed)} is after S3 stored its manifest at {iso(stored)}")
    if newest_object and newest_object[1] and newest_object[1] > stored + CLOCK_SKEW_TOLERANCE:
        key, modified = newest_object
        reasons.append(f"{key} was stored at {iso(modified)}, after its manifest ({iso(stored)}): the run was changed after it was committed")
    return reasons


def suspicious_warning(backup):
    """The warning for a refused backup: its manifest's key and the reasons."""
    return (
        f"{backup['manifest_key']}: refused as suspicious ({'; '.join(backup['reasons'])}); never selected for a restore nor"
        " counted as fresh. Only a key that may write under this host's prefix can store it: check whether that key leaked"
    )


def cold_manifest_warning(backup):
    return (
        f"{backup['manifest_key']}: not read, it is in storage class {backup['manifest_storage_class']} (cold):"
        " a restore of this backup will thaw it first; its objects and finished time are not reported"
    )


# ---------------------------------------------------------------------------------------------- backups


def _backup(host, job, time, **fields):
    backup = {
        "host": host,
        "job": job,
        "method": None,
        "time": time,
        "started": None,
        "finished": None,
        "manifest_read": False,
        "type": "full",
        "size": 0,
        "sha256": None,
        "objects": None,
        "manifest_key": None,
        "manifest_storage_class": DEFAULT_STORAGE_CLASS,
        "run_prefix": None,
        "storage_classes": [],
        "cold": False,
        "newest_object": None,
        "reasons": [],
    }
    backup.update(fields)
    return backup


def _stored_fields(objects, manifest):
    """A backup's fields from the listing of its data objects and its manifest."""
    everything = list(objects.values()) + [manifest]
    classes = sorted({listed["storage_class"] for listed in everything})
    dated = [(key, listed["modified"]) for key, listed in objects.items() if listed["modified"]]
    return {
        "size": sum(listed["size"] for listed in objects.values()),
        "manifest_storage_class": manifest["storage_class"],
        "storage_classes": classes,
        "cold": any(storage_class in COLD_STORAGE_CLASSES for storage_class in classes),
        "newest_object": max(dated, key=lambda pair: pair[1]) if dated else None,
    }


def _claimed(backup):
    """The time the host gave the backup: its run folder's (runs) or its name's (duplicity sets)."""
    return backup["started"] or backup["finished"] or backup["time"]


def _order(backup):
    """Oldest first by the host's own time. Only backups whose claims S3's LastModified does not
    contradict are ordered (see forged_reasons), and the claim, unlike LastModified, survives an
    operator's copy of a manifest onto itself (re-encryption, a storage class change), which would
    otherwise make an old run the newest."""
    return (_claimed(backup), backup["manifest_key"])


def run_backups(host, job, runs, prefix, now):
    """Backups of the runner's run folders (those with a manifest) and the folders without one:
    (backups oldest first, incomplete run times). A backup's time is S3's LastModified of its
    manifest; started is its folder's time, finished its manifest's claim once read."""
    backups, incomplete = [], []
    for folder in sorted(runs):
        run = runs[folder]
        if not run["manifest_key"]:
            incomplete.append(_run_time(folder))
            continue
        stored = run["manifest"]["modified"]
        backup = _backup(
            host,
            job,
            stored,
            started=_run_time(folder),
            manifest_key=run["manifest_key"],
            run_prefix=f"{prefix}/{host}/{job}/{folder}/",
            **_stored_fields(run["files"], run["manifest"]),
        )
        backup["reasons"] = forged_reasons(stored, [("its folder time", backup["started"])], backup["newest_object"], now)
        backups.append(backup)
    return sorted(backups, key=_order), incomplete


def duplicity_backups(host, job, sets, prefix, now):
    """Backups of duplicity's sets: complete ones (manifest stored) whose chain reaches a complete
    full backup; (backups oldest first, times of incomplete or orphaned sets). A set's time is S3's
    LastModified of its manifest, finished the time in its name (what duplicity restore --time takes).
    A set building on a suspicious one is suspicious too."""
    usable_ends, suspicious_ends, backups, unusable = set(), {}, [], []
    # Oldest name first, fulls before incrementals of the same time: a set's parent is always seen first.
    for kind, start, end in sorted(sets, key=lambda s: (s[2], s[0] != "full")):
        backup_set = sets[(kind, start, end)]
        complete = bool(backup_set["manifest_key"] and backup_set["volumes"])
        parent_suspicious = kind == "incremental" and start in suspicious_ends
        if not complete or (kind == "incremental" and start not in usable_ends and not parent_suspicious):
            unusable.append(end)
            continue
        stored = backup_set["manifest"]["modified"]
        backup = _backup(
            host,
            job,
            stored,
            method=DUPLICITY,
            finished=end,
            type=kind,
            manifest_key=backup_set["manifest_key"],
            run_prefix=f"{prefix}/{host}/{job}/{DUPLICITY}/",
            **_stored_fields(backup_set["volumes"], backup_set["manifest"]),
        )
        backup["reasons"] = forged_reasons(stored, [("its file names' time", end)], backup["newest_object"], now)
        if parent_suspicious:
            backup["reasons"].append(f"it builds on the suspicious set {suspicious_ends[start]}")
        if backup["reasons"]:
            suspicious_ends[end] = backup["manifest_key"]
        else:
            usable_ends.add(end)
        backups.append(backup)
    return sorted(backups, key=_order), unusable


def job_backups(host, job, listing, prefix, now):
    """One job's (good backups oldest first, suspicious backups oldest first, {'count', 'newest'} of
    its incomplete runs). ``now`` is the control node's time, for refusing backups dated after it."""
    runs, incomplete = run_backups(host, job, listing["runs"], prefix, now)
    sets, unusable = duplicity_backups(host, job, listing["duplicity"], prefix, now)
    every = sorted(runs + sets, key=_order)
    failed = incomplete + unusable
    return (
        [backup for backup in every if not backup["reasons"]],
        [backup for backup in every if backup["reasons"]],
        {"count": len(failed), "newest": iso(max(failed)) if failed else None},
    )


def refuse_if_suspicious(backup, good, suspicious):
    """Moves ``backup`` from ``good`` to ``suspicious`` when it has reasons (a manifest read found
    some); True when it did."""
    if not backup["reasons"] or backup not in good:
        return False
    good.remove(backup)
    suspicious.append(backup)
    suspicious.sort(key=_order)
    return True


def manifest_objects(body):
    """(the manifest, its objects as {'key', 'size', 'sha256'}) from a manifest.json's bytes; raises
    ValueError saying what is wrong (not JSON, not a manifest, a version this collection does not know)."""
    try:
        manifest = contract.read_manifest(json.loads(body))
        objects = [{"key": str(o["key"]), "size": int(o["size"]), "sha256": o.get("sha256")} for o in manifest["objects"]]
    except (ValueError, TypeError, KeyError, AttributeError) as error:  # contract.ManifestError is a ValueError
        raise ValueError(str(error)) from None
    return manifest, objects


def apply_manifest(backup, body, listed_files, now):
    """The backup completed with its manifest's contents: finished time, method, objects, sha256;
    its claimed started/finished checked against S3's time (adding to backup['reasons']).
    Returns a list of warnings (unreadable manifest, objects missing from the bucket)."""
    where = backup["manifest_key"]
    try:
        manifest, objects = manifest_objects(body)
    except ValueError as error:
        return [f"{where}: unreadable manifest ({error}); only the listing is reported for this run"]
    warnings = []
    finished = parse_iso(manifest.get("finished"))
    if finished:
        backup["finished"] = finished
    else:
        warnings.append(f"{where}: 'finished' is not a UTC time like 2026-11-22T02:00:00Z; it is not reported")
    claims = [("its manifest's 'started'", parse_iso(manifest.get("started"))), ("its manifest's 'finished'", finished)]
    backup["reasons"] += [reason for reason in forged_reasons(backup["time"], claims, None, now) if reason not in backup["reasons"]]
    backup.update(method=manifest.get("method"), objects=objects)
    if len(objects) == 1:
        backup["sha256"] = objects[0]["sha256"]
    damaged = [o["key"] for o in objects if (listed_files.get(o["key"]) or {}).get("size") != o["size"]]
    if damaged:
        warnings.append(f"{where}: {len(damaged)} object(s) it lists are missing or of another size in the bucket, e.g. {damaged[0]}: the backup is damaged")
    return warnings


# ---------------------------------------------------------------------------------------------- choosing


def newest_backup(backups):
    """The newest good backup (backups are oldest first), or None."""
    return backups[-1] if backups else None


def select_backup(backups, at):
    """The backup a restore at ``at`` ('latest' or a UTC datetime) uses: the newest good one S3
    stored at or before ``at``. Returns (backup, reason): reason explains a None backup."""
    if not backups:
        return None, "there is no complete backup"
    if at == LATEST:
        return backups[-1], None
    for backup in reversed(backups):
        if backup["time"] <= at:
            return backup, None
    return None, f"no backup had finished at {iso(at)}: the oldest one is from {iso(backups[0]['time'])}"


def staleness(newest, now, max_age):
    """(stale, age_seconds) of a job whose newest good backup is ``newest``: stale when there is
    none or it is older than ``max_age`` seconds (exactly max_age old is still fresh). The age is
    never negative: a time after ``now`` (a control node clock behind S3's) counts as age 0."""
    if newest is None:
        return True, None
    # The earlier of S3's time and the host's claim: a claim later than S3's is refused anyway, and a
    # manifest copied onto itself gets a new LastModified that must not make a stopped host look fresh.
    claim = newest.get("finished") or newest.get("started")  # started only where the manifest was not read
    age = max(int((now - min(newest["time"], claim or newest["time"])).total_seconds()), 0)
    return age > max_age, age


# ---------------------------------------------------------------------------------------------- output


def public_backup(backup):
    """A backup as the module returns it; a suspicious one with its reasons."""
    view = {key: value for key, value in backup.items() if key not in INTERNAL_FIELDS}
    for field in ("time", "started", "finished"):
        view[field] = iso(backup[field])
    if not view["reasons"]:
        del view["reasons"]
    return view
