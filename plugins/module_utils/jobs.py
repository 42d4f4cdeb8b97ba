# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup jobs of one host: validated, with defaults applied, and turned into what the host
needs: the runner's JSON config and the values its systemd units are rendered from.

Used by the ``job_configs`` filter of the ``jobs`` role, so every check runs on the control
node before anything on the host changes."""

from __future__ import annotations

import base64
import binascii
import re

from ansible_collections.systemd_s3.backup.plugins.module_utils.backups import parse_duration
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError

METHODS = ("stream", "archive", "sync", "duplicity")
COMPRESSIONS = {"zstd": (3, 1, 19, ".zst"), "gzip": (6, 1, 9, ".gz"), "none": (None, None, None, "")}
IO_CLASSES = ("best-effort", "idle", "realtime")
UNIT_PREFIX = "s3-backup"

# Job names become unit names, file names and key segments: keep them boring.
JOB_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_UNIT_NAME = re.compile(r"[A-Za-z0-9:_.@\\-]+\.(service|socket|target|mount|timer|path)")
_USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}\$?")
_OBJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# A systemd time span such as 30min, 1h 30min, 6h, infinity.
_TIMESPAN = re.compile(r"(infinity|\d+(\.\d+)?\s*(us|ms|s|sec|m|min|h|hr|d|w|M|y)?(\s+\d+(\.\d+)?\s*(us|ms|s|sec|m|min|h|hr|d|w|M|y)?)*)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# age recipients: an X25519 key (bech32, "age1" and 58 characters) or an SSH public key line.
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_AGE_RECIPIENT = re.compile(rf"age1[{_BECH32}]{{58}}")
_SSH_RECIPIENT = re.compile(r"(ssh-ed25519|ssh-rsa) ([A-Za-z0-9+/]+={0,2})( [^\x00-\x1f\x7f]*)?")
# gpg derives the key from it: short ones can be guessed offline by whoever gets the bucket.
PASSPHRASE_MIN_LENGTH = 20
# Debian packages of the encryptors the runner calls.
ENCRYPTION_PACKAGES = {"age": "age", "passphrase": "gpg", "gpg": "gpg"}
# duplicity's time intervals (man duplicity, TIME FORMATS): 1M, 2W, 1Y6M, 30D.
_DUPLICITY_INTERVAL = re.compile(r"(\d+[smhDWMY])+")
_PGP_BLOCK = re.compile(r"\s*-----BEGIN PGP (PUBLIC|PRIVATE) KEY BLOCK-----\r?\n.+?-----END PGP \1 KEY BLOCK-----\s*", re.S)
# The full backups of a duplicity job run as a unit of their own, named after the job with this suffix.
FULL_SUFFIX = "-full"

DEFAULTS = {
    "schedule": ["daily"],
    "randomized_delay": "1h",
    "timeout": "6h",
    "nice": 10,
    "io_scheduling_class": "best-effort",
    "io_scheduling_priority": 7,
    "compression": "zstd",
    "compression_level": None,
    "encryption": None,
    "stop_services": [],
    "pre_commands": [],
    "run_as": None,
    "excludes": [],
    "read_write_paths": [],
    "part_size_mb": 16,
    "max_concurrency": 4,
    "enabled": True,
}
FIELDS_BY_METHOD = {
    "stream": {"command", "run_as", "compression", "compression_level", "object_name", "encryption"},
    "archive": {"command", "run_as", "archive_dir", "encryption"},
    "sync": {"sync_dir", "excludes"},
    "duplicity": {
        "source_dir",
        "scripts",
        "run_as",
        "excludes",
        "full_schedule",
        "full_if_older_than",
        "retention",
        "encryption",
    },
}
# duplicity jobs: incrementals weekly and fulls monthly, unless the job says otherwise.
DUPLICITY_DEFAULTS = {"schedule": ["weekly"], "full_schedule": ["monthly"]}
COMMON_FIELDS = {
    "name",
    "method",
    "schedule",
    "randomized_delay",
    "timeout",
    "nice",
    "io_scheduling_class",
    "io_scheduling_priority",
    "stop_services",
    "pre_commands",
    "read_write_paths",
    "part_size_mb",
    "max_concurrency",
    "enabled",
    "description",
    "max_age",
}


def _field(index, job, name):
    label = job.get("name") if isinstance(job, dict) and isinstance(job.get("name"), str) else f"#{index}"
    return f"jobs[{label}].{name}"


def _one_line(field, value, what):
    if not isinstance(value, str) or not value.strip():
        raise InputError(field, f"must be a non-empty string ({what})", f"Set {field.split('.')[-1]}")
    if _CONTROL.search(value):
        raise InputError(field, f"{value!r} contains a newline or control character", "Write it on one line")
    return value.strip()


def _absolute_path(field, value):
    path = _one_line(field, value, "an absolute path")
    if not path.startswith("/") or "/../" in f"{path}/" or path.rstrip("/") == "":
        raise InputError(field, f"{value!r} is not an absolute path below /", "Use a path like /var/backups/app")
    return path.rstrip("/")


def _string_list(field, value):
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise InputError(field, f"must be a list, not {type(value).__name__}", "Write it as a YAML list")
    return list(value)


def _unit(field, name):
    name = _one_line(field, name, "a unit name")
    if "." not in name:
        name += ".service"
    if not _UNIT_NAME.fullmatch(name):
        raise InputError(field, f"{name!r} is not a systemd unit name", "Use a name like postgresql.service")
    return name


def _int(field, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value))
        except ValueError:
            raise InputError(field, f"{value!r} is not a whole number", f"Use a number from {low} to {high}") from None
    if not low <= value <= high:
        raise InputError(field, f"{value} is out of range", f"Use a number from {low} to {high}")
    return value


def _bech32_checksum_ok(text):
    """BIP 173 checksum of a lowercase bech32 string (age uses it without the 90-character limit)."""
    hrp, data = text.rsplit("1", 1)
    checksum = 1
    for value in [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + [_BECH32.index(c) for c in data]:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for bit, generator in enumerate((0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)):
            checksum ^= generator if (top >> bit) & 1 else 0
    return checksum == 1


def _ssh_key_type_ok(kind, blob):
    """The key's base64 blob starts with its own type: catches a line cut or pasted wrongly."""
    try:
        data = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return False
    length = int.from_bytes(data[:4], "big")
    return data[4 : 4 + length] == kind.encode()


def _age_recipient(field, value):
    recipient = _one_line(field, value, "an age recipient")
    ssh = _SSH_RECIPIENT.fullmatch(recipient)
    if ssh and _ssh_key_type_ok(ssh.group(1), ssh.group(2)):
        return recipient
    if _AGE_RECIPIENT.fullmatch(recipient) and _bech32_checksum_ok(recipient):
        return recipient
    raise InputError(
        field,
        f"{recipient!r} is not a valid age recipient (age1... with a good checksum) or ssh-ed25519/ssh-rsa public key",
        "Copy the public key that age-keygen printed (or age-keygen -y KEYFILE), or a line of ~/.ssh/id_ed25519.pub",
    )


# The public-key option of each method's encryption: age for the runner's own streams, GPG for duplicity.
PUBLIC_KEY_OPTIONS = {"stream": "age_recipients", "archive": "age_recipients", "duplicity": "gpg_public_keys"}
_PUBLIC_KEY_EXAMPLES = {
    "age_recipients": "{age_recipients: [age1...]}",
    "gpg_public_keys": "{gpg_public_keys: [\"{{ lookup('file', 'backup-key.asc') }}\"]}",
}


def _encryption(field, value, method):
    """{"method": "age", "recipients": [...]}, {"method": "gpg", "public_keys": [...]} or
    {"method": "passphrase", "passphrase": ...}, or None. Errors never repeat a passphrase or a key."""
    if value is None:
        return None
    public = PUBLIC_KEY_OPTIONS[method]
    allowed = {public, "passphrase"}
    options = set(value) if isinstance(value, dict) else set()
    if len(options & allowed) != 1 or options - allowed:
        other = (options - allowed) & set(PUBLIC_KEY_OPTIONS.values())
        unknown = ", ".join(sorted(map(str, options - allowed)))
        raise InputError(
            field,
            f"must set exactly one of {public} and passphrase"
            + (f" ({', '.join(other)} is for {'duplicity' if 'gpg_public_keys' in other else 'stream and archive'} jobs)" if other
               else f" (unknown: {unknown})" if unknown else ""),
            f"Use {_PUBLIC_KEY_EXAMPLES[public]} (the host then cannot decrypt its backups) or {{passphrase: ...}} from Ansible Vault",
        )
    if public in value:
        keys = _string_list(f"{field}.{public}", value[public])
        if not keys:
            raise InputError(f"{field}.{public}", "is empty", f"List at least one public key, e.g. {_PUBLIC_KEY_EXAMPLES[public]}")
        if public == "gpg_public_keys":
            return {"method": "gpg", "public_keys": [_gpg_public_key(f"{field}.{public}", k) for k in keys]}
        return {"method": "age", "recipients": [_age_recipient(f"{field}.{public}", r) for r in keys]}
    passphrase = value["passphrase"]
    if not isinstance(passphrase, str) or len(passphrase) < PASSPHRASE_MIN_LENGTH or _CONTROL.search(passphrase):
        raise InputError(
            f"{field}.passphrase",
            f"must be one line of at least {PASSPHRASE_MIN_LENGTH} characters (gpg reads only the first line)",
            "Generate one, e.g. with openssl rand -base64 32, and keep it in Ansible Vault",
        )
    return {"method": "passphrase", "passphrase": passphrase}


def _gpg_public_key(field, value):
    """An ASCII-armored OpenPGP public key (gpg --export --armor). A private key is refused: on the
    host it would let anyone who gets there decrypt every backup."""
    match = _PGP_BLOCK.fullmatch(value) if isinstance(value, str) else None
    if match and match.group(1) == "PRIVATE":
        raise InputError(field, "holds a PGP PRIVATE key block", "Give the public key only: gpg --export --armor KEYID")
    if not match:
        raise InputError(
            field,
            "is not an ASCII-armored PGP public key block (-----BEGIN PGP PUBLIC KEY BLOCK----- ... -----END ...)",
            "Export it with gpg --export --armor KEYID > backup-key.asc and pass the file's contents",
        )
    return value.strip() + "\n"


def _duplicity_interval(field, value):
    text = _one_line(field, str(value), "a duplicity time interval")
    if not _DUPLICITY_INTERVAL.fullmatch(text):
        raise InputError(field, f"{text!r} is not a duplicity time interval", "Use a number and s, m, h, D, W, M or Y, e.g. 1M or 6M")
    return text


def _schedules(field, value):
    return [_one_line(field, s, "an OnCalendar expression") for s in _string_list(field, value)]


def _duplicity_fields(job, out, field, access):
    """source_dir or scripts, schedules of incrementals and fulls, retention."""
    if ("source_dir" in job) == ("scripts" in job):
        raise InputError(
            field("source_dir"),
            "duplicity jobs back up either source_dir or the output of scripts, and this job sets " + ("both" if "source_dir" in job else "neither"),
            "Set source_dir: /srv/data, or scripts: {name: shell script run in its own temporary directory}",
        )
    if "source_dir" in job:
        out["source_dir"] = _absolute_path(field("source_dir"), job["source_dir"])
        out["scripts"] = []
    else:
        scripts = job["scripts"]
        if not isinstance(scripts, dict) or not scripts:
            raise InputError(
                field("scripts"), "must be a non-empty mapping of name to shell script", "Write e.g. scripts: {repos: 'git clone --mirror /srv/git/app.git'}"
            )
        out["scripts"] = []
        for name, script in scripts.items():
            if not isinstance(name, str) or not _OBJECT_NAME.fullmatch(name):
                raise InputError(field("scripts"), f"{name!r} is not a safe directory name", "Name each script with letters, digits, '.', '_' and '-'")
            if not isinstance(script, str) or not script.strip() or "\0" in script:
                raise InputError(
                    field(f"scripts.{name}"),
                    "must be a non-empty shell script",
                    "Write the commands that put this part of the backup into the current directory",
                )
            out["scripts"].append({"name": name, "script": script})
    out["excludes"] = [_one_line(field("excludes"), e, "an exclude pattern") for e in _string_list(field("excludes"), out["excludes"])]
    if job.get("full_if_older_than") is not None:
        if job.get("full_schedule"):
            raise InputError(
                field("full_schedule"),
                "is set together with full_if_older_than",
                "Choose one: full backups on their own schedule (full_schedule), or an incremental that turns full"
                " when the last full is older (full_if_older_than)",
            )
        out["full_if_older_than"] = _duplicity_interval(field("full_if_older_than"), job["full_if_older_than"])
        out["full_schedule"] = []
    else:
        out["full_if_older_than"] = None
        out["full_schedule"] = _schedules(field("full_schedule"), job.get("full_schedule", DUPLICITY_DEFAULTS["full_schedule"]))
        if not out["full_schedule"]:
            raise InputError(
                field("full_schedule"),
                "is empty, and full_if_older_than is not set: no full backup would ever be taken",
                "Set full_schedule (e.g. monthly) or full_if_older_than (e.g. 1M)",
            )
    out["retention"] = _retention(field("retention"), job.get("retention"), access)


def _retention(field, value, access):
    """{"keep_full": N} or {"older_than": "6M"}: duplicity deletes older sets, which needs the prune permission."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) != 1 or not set(value) <= {"keep_full", "older_than"}:
        raise InputError(field, "must set exactly one of keep_full and older_than", "Use {keep_full: 3} (full chains to keep) or {older_than: 6M}")
    permissions = (access or {}).get("permissions")
    if permissions is not None and "prune" not in permissions:
        raise InputError(
            field,
            f"deletes old backup sets, and this host's principal has only {', '.join(permissions) or 'no'} permission(s)",
            "Add prune to the host's backup_permissions (or aws_backup_permissions) and run the aws role, or remove retention",
        )
    if "keep_full" in value:
        return {"keep_full": _int(f"{field}.keep_full", value["keep_full"], 1, 1000)}
    return {"older_than": _duplicity_interval(f"{field}.older_than", value["older_than"])}


def _duplicity_reads(name, field, access):
    """duplicity reads back what it writes (a HeadObject of every volume, the last manifest of a
    passphrase chain), which AWS authorizes as s3:GetObject: the aws role grants that on each duplicity
    job's own folder, so a job it has not seen yet would stall and fail on AWS."""
    granted = (access or {}).get("duplicity_jobs")
    permissions = (access or {}).get("permissions") or []
    if granted is not None and name not in granted and "restore" not in permissions:
        raise InputError(
            field,
            f"is duplicity, and this host's principal may not read back job {name}'s duplicity folder (it may for "
            f"{', '.join(granted) or 'no job'})",
            "Run the systemd_s3.backup.aws role with this job in the host's jobs_list first (site.yml does): it grants "
            "s3:GetObject on <prefix>/<job>/duplicity/ to the host",
        )


def normalize_job(index, job, access=None):
    """One job with defaults applied and every field checked; raises InputError naming the field.
    ``access`` (the aws role's hand-over) tells which permissions the host's principal has, if known."""
    if not isinstance(job, dict):
        raise InputError(f"jobs[#{index}]", "must be a mapping", "Give each job as a dict with name and method")
    name = job.get("name")
    if not isinstance(name, str) or not JOB_NAME.fullmatch(name):
        raise InputError(
            _field(index, job, "name"),
            f"{name!r} is not a valid job name",
            "Use 1-40 lowercase letters, digits, '-' or '_', starting with a letter or digit (it becomes a unit name)",
        )
    method = job.get("method")
    if method not in METHODS:
        raise InputError(_field(index, job, "method"), f"{method!r} is not a backup method", f"Choose one of {', '.join(METHODS)}")
    unknown = set(job) - COMMON_FIELDS - FIELDS_BY_METHOD[method]
    if unknown:
        raise InputError(
            _field(index, job, sorted(unknown)[0]),
            f"is not an option of {method} jobs",
            f"Remove it; {method} jobs take {', '.join(sorted(COMMON_FIELDS | FIELDS_BY_METHOD[method]))}",
        )
    given = {k: v for k, v in job.items() if v is not None}
    out = {**DEFAULTS, **(DUPLICITY_DEFAULTS if method == "duplicity" else {}), **given}

    def field(name):
        return _field(index, job, name)

    out["schedule"] = _schedules(field("schedule"), out["schedule"])
    if not out["schedule"]:
        raise InputError(field("schedule"), "must name at least one OnCalendar expression", "Use e.g. daily or 'Sun 02:00'")
    for span in ("randomized_delay", "timeout"):
        value = _one_line(field(span), str(out[span]), "a systemd time span")
        if not _TIMESPAN.fullmatch(value):
            raise InputError(field(span), f"{value!r} is not a systemd time span", "Use e.g. 30min, 2h or 1h 30min")
        out[span] = value
    out["nice"] = _int(field("nice"), out["nice"], -20, 19)
    if out["io_scheduling_class"] not in IO_CLASSES:
        raise InputError(field("io_scheduling_class"), f"{out['io_scheduling_class']!r} is unknown", f"Choose one of {', '.join(IO_CLASSES)}")
    out["io_scheduling_priority"] = _int(field("io_scheduling_priority"), out["io_scheduling_priority"], 0, 7)
    out["part_size_mb"] = _int(field("part_size_mb"), out["part_size_mb"], 5, 5120)
    out["max_concurrency"] = _int(field("max_concurrency"), out["max_concurrency"], 1, 32)
    out["stop_services"] = [_unit(field("stop_services"), s) for s in _string_list(field("stop_services"), out["stop_services"])]
    out["pre_commands"] = [_one_line(field("pre_commands"), c, "a shell command") for c in _string_list(field("pre_commands"), out["pre_commands"])]
    out["read_write_paths"] = [_absolute_path(field("read_write_paths"), p) for p in _string_list(field("read_write_paths"), out["read_write_paths"])]
    if not isinstance(out["enabled"], bool):
        raise InputError(field("enabled"), f"{out['enabled']!r} is not true or false", "Use true or false")
    if "description" in out:
        out["description"] = _one_line(field("description"), out["description"], "one line of text")
    if "max_age" in out:
        # Read by the verify playbook (freshness), checked here so a typo fails at deploy time.
        out["max_age"] = _one_line(field("max_age"), str(out["max_age"]), "a time span")
        parse_duration(out["max_age"], field("max_age"))

    if method in ("stream", "archive"):
        out["command"] = _one_line(field("command"), job.get("command"), "the backup command")
    if method in ("stream", "archive", "duplicity"):
        if out["run_as"] is not None and not _USER_NAME.fullmatch(str(out["run_as"])):
            raise InputError(field("run_as"), f"{out['run_as']!r} is not a user name", "Use an existing user such as postgres")
    if method == "stream":
        if out["compression"] not in COMPRESSIONS:
            raise InputError(field("compression"), f"{out['compression']!r} is unknown", f"Choose one of {', '.join(COMPRESSIONS)}")
        default_level, low, high, _suffix = COMPRESSIONS[out["compression"]]
        if out["compression"] == "none":
            out["compression_level"] = None
        else:
            level = default_level if out["compression_level"] is None else out["compression_level"]
            out["compression_level"] = _int(field("compression_level"), level, low, high)
        object_name = job.get("object_name", name)
        if not isinstance(object_name, str) or not _OBJECT_NAME.fullmatch(object_name):
            raise InputError(field("object_name"), f"{object_name!r} is not a safe object name", "Use letters, digits, '.', '_' and '-', e.g. db.sql")
        out["object_name"] = object_name
    if method in PUBLIC_KEY_OPTIONS:
        out["encryption"] = _encryption(field("encryption"), out["encryption"], method)
    if method == "duplicity":
        _duplicity_fields(given, out, field, access)
        _duplicity_reads(name, field("method"), access)
    if method == "archive":
        out["archive_dir"] = _absolute_path(field("archive_dir"), job.get("archive_dir"))
    if method == "sync":
        out["sync_dir"] = _absolute_path(field("sync_dir"), job.get("sync_dir"))
        out["excludes"] = [_one_line(field("excludes"), e, "an exclude pattern") for e in _string_list(field("excludes"), out["excludes"])]
    return out


def normalize_jobs(jobs, defaults=None, access=None):
    """Every job of a host, checked; ``defaults`` (the operator's, for every job) fill what a job
    leaves out. Job names must be unique."""
    if jobs is None:
        return []
    if not isinstance(jobs, (list, tuple)):
        raise InputError("jobs", f"must be a list, not {type(jobs).__name__}", "Give the host's jobs as a YAML list")
    defaults = defaults or {}
    if not isinstance(defaults, dict) or {"name", "method"} & set(defaults):
        raise InputError("defaults", "must be a mapping without name or method", "Set per-job defaults such as schedule or timeout")
    seen = {}
    normalized = []
    for index, job in enumerate(jobs):
        if isinstance(job, dict):
            # Only options of the job's method: a default for another method is not an error.
            allowed = COMMON_FIELDS | FIELDS_BY_METHOD.get(job.get("method"), set())
            job = dict({k: v for k, v in defaults.items() if k in allowed}, **job)
        out = normalize_job(index, job, access)
        for unit_name in unit_names(out):
            if unit_name in seen:
                other = seen[unit_name]
                problem = (
                    f"is used by jobs #{other} and #{index}"
                    if unit_name == out["name"] and normalized[other]["name"] == out["name"]
                    else f"gives unit {UNIT_PREFIX}-{unit_name}.service, which job #{other} has too (a duplicity job's full backups run as <name>{FULL_SUFFIX})"
                )
                raise InputError(f"jobs[{out['name']}].name", problem, "Give every job its own name")
            seen[unit_name] = index
        normalized.append(out)
    return normalized


def unit_names(job):
    """The names the job's units carry after the unit prefix: the job's, and for a duplicity job
    with scheduled full backups also <name>-full."""
    return [job["name"]] + ([job["name"] + FULL_SUFFIX] if job["method"] == "duplicity" and job["full_schedule"] else [])


def runner_config(job, access, host, credentials_file):
    """The runner's JSON config of one normalized job. ``access`` is what the aws role handed the
    host (bucket, prefix, region, endpoint, alert topic); it holds no secret, nor does this.
    ``credentials_file`` is where the host keeps its key (used when systemd cannot pass it)."""
    for key in ("bucket", "prefix", "region"):
        if not access.get(key):
            raise InputError(
                f"access.{key}",
                "is missing: the host has no backup access yet",
                "Run the systemd_s3.backup.aws role for this host first (site.yml does), or set jobs_access",
            )
    config = {
        "job": job["name"],
        "host": host,
        "unit": f"{UNIT_PREFIX}-{job['name']}.service",
        "method": job["method"],
        "bucket": access["bucket"],
        "prefix": access["prefix"].strip("/"),
        "region": access["region"],
        "endpoint_url": access.get("endpoint_url") or None,
        # Hosts with an instance profile (principal kind role) have no key file.
        "credentials_file": credentials_file if access.get("credentials_file") else None,
        "alert_topic_arn": access.get("alert_topic_arn") or None,
        "stop_services": job["stop_services"],
        "pre_commands": job["pre_commands"],
        "part_size_mb": job["part_size_mb"],
        "max_concurrency": job["max_concurrency"],
    }
    for key in (
        "command",
        "run_as",
        "compression",
        "compression_level",
        "object_name",
        "archive_dir",
        "sync_dir",
        "excludes",
        "source_dir",
        "scripts",
        "full_if_older_than",
        "retention",
    ):
        if key in FIELDS_BY_METHOD[job["method"]]:
            config[key] = job.get(key)
    if job["method"] == "duplicity":
        config["duplicity_action"] = "incremental"
    if "encryption" in FIELDS_BY_METHOD[job["method"]]:
        config["encryption"] = public_encryption(job["encryption"])
    return config


def public_encryption(encryption):
    """What may be shown of a job's encryption: the method and age's public keys, never a passphrase
    (the runner gets that as a systemd credential)."""
    return {k: v for k, v in encryption.items() if k != "passphrase"} if encryption else None


def job_units(jobs, access, host, defaults=None, config_dir="/etc/systemd-s3-backup"):
    """For each unit pair (one per job, two for a duplicity job whose fulls have their own schedule:
    <name> takes incrementals, <name>-full fulls): its name, unit names, the runner config, and the
    settings its units use.
    The runner's configs live in ``config_dir``/jobs, the host's key in ``config_dir``/aws-credentials,
    a passphrase job's passphrase in ``config_dir``/<job>.passphrase. Nothing returned holds a secret:
    Ansible prints loop items at -v, even with a label."""
    result = []
    for job in normalize_jobs(jobs, defaults, access):
        writable = list(job["read_write_paths"])
        if job["method"] == "archive":
            writable.insert(0, job["archive_dir"])
        encryption = job.get("encryption")
        packages = {"sync": ["awscli"], "duplicity": ["duplicity"]}.get(job["method"], [])
        if encryption:
            packages.append(ENCRYPTION_PACKAGES[encryption["method"]])
            job = dict(job, encryption=public_encryption(encryption))
        config = runner_config(job, access, host, f"{config_dir}/aws-credentials")
        unit = {
            "name": job["name"],
            "service": f"{UNIT_PREFIX}-{job['name']}.service",
            "timer": f"{UNIT_PREFIX}-{job['name']}.timer",
            "config_path": f"{config_dir}/jobs/{job['name']}.json",
            "config": config,
            "job": job,
            "schedule": job["schedule"],
            "schedule_field": "schedule",
            "kind": "incremental" if job["method"] == "duplicity" else "backup",
            "read_write_paths": writable,
            "encryption": encryption["method"] if encryption else None,
            "passphrase_path": f"{config_dir}/{job['name']}.passphrase",
            "packages": packages,
        }
        result.append(unit)
        if len(unit_names(job)) > 1:
            name = job["name"] + FULL_SUFFIX
            full_config = dict(config, unit=f"{UNIT_PREFIX}-{name}.service", duplicity_action="full", full_if_older_than=None)
            result.append(
                dict(
                    unit,
                    name=name,
                    service=f"{UNIT_PREFIX}-{name}.service",
                    timer=f"{UNIT_PREFIX}-{name}.timer",
                    config_path=f"{config_dir}/jobs/{name}.json",
                    config=full_config,
                    schedule=job["full_schedule"],
                    schedule_field="full_schedule",
                    kind="full",
                )
            )
    return result
