# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup jobs of one host: validated, with defaults applied, and turned into what the host
needs: the runner's JSON config and the values its systemd units are rendered from.

The rules of each field are the contract's (module_utils/contract.py), which the runner applies too;
this module adds what only the control node knows (the operator's form of a job, schedules, the
host's access) and checks the runner config it ships with the runner's own check. Used by the
``job_units`` filter of the ``jobs`` role, so every check runs before anything on the host changes."""

from __future__ import annotations

import hashlib
import json
import os
import re

from ansible_collections.systemd_s3.backup.plugins.module_utils import contract
from ansible_collections.systemd_s3.backup.plugins.module_utils import retention
from ansible_collections.systemd_s3.backup.plugins.module_utils.backups import parse_duration
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError

METHODS = contract.METHODS
UNIT_PREFIX = contract.UNIT_PREFIX
FULL_SUFFIX = contract.FULL_SUFFIX
# A systemd time span such as 30min, 1h 30min, 6h, infinity.
_TIMESPAN = re.compile(r"(infinity|\d+(\.\d+)?\s*(us|ms|s|sec|m|min|h|hr|d|w|M|y)?(\s+\d+(\.\d+)?\s*(us|ms|s|sec|m|min|h|hr|d|w|M|y)?)*)")
PUBLIC_KEY_OPTIONS = contract.PUBLIC_KEY_OPTIONS
_PUBLIC_KEY_EXAMPLES = {
    "age_recipients": "{age_recipients: [age1...]}",
    "gpg_public_keys": "{gpg_public_keys: [\"{{ lookup('file', 'backup-key.asc') }}\"]}",
}


def _field(index, job, name):
    label = job.get("name") if isinstance(job, dict) and isinstance(job.get("name"), str) else f"#{index}"
    return f"jobs[{label}].{name}"


def _checked(field, check, *args):
    """``check(*args)`` of the contract, its FieldError as an InputError naming the field."""
    try:
        return check(*args)
    except contract.FieldError as error:
        where = f"{field}.{error.at}" if error.at else field
        raise InputError(where, error.problem, error.fix or f"Set {field.split('.')[-1]}") from None


def _one_line(field, value, what):
    return _checked(field, contract.one_line, value, what)


def _absolute_path(field, value):
    return _checked(field, contract.absolute_path, value)


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
    return _checked(field, contract.unit_name, name if "." in name else name + ".service")


def _int(field, value, check, *args):
    """A whole number (also given as a string, as templating yields), checked by the contract."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    return _checked(field, check, value, *args)


def _encryption(field, value, method):
    """The operator's form ({age_recipients: [...]}, {gpg_public_keys: [...]} or {passphrase: ...}) as
    the runner's ({"method": ..., ...}, with the passphrase, which job_units then strips), checked
    by the contract. Errors never repeat a passphrase or a key."""
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
    if "passphrase" in value:
        return {"method": "passphrase", "passphrase": _checked(f"{field}.passphrase", contract.passphrase, value["passphrase"])}
    keys = _string_list(f"{field}.{public}", value[public])
    if not keys:
        raise InputError(f"{field}.{public}", "is empty", f"List at least one public key, e.g. {_PUBLIC_KEY_EXAMPLES[public]}")
    if public == "gpg_public_keys":
        return {"method": "gpg", "public_keys": [_checked(f"{field}.{public}", contract.gpg_public_key, k) for k in keys]}
    return {"method": "age", "recipients": [_checked(f"{field}.{public}", contract.age_recipient, r) for r in keys]}


def _duplicity_interval(field, value):
    return _checked(field, contract.duplicity_interval, value)


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
        out["scripts"] = _checked(field("scripts"), contract.scripts, [{"name": name, "script": script} for name, script in scripts.items()])
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
        out["full_schedule"] = _schedules(field("full_schedule"), job.get("full_schedule", contract.METHOD_DEFAULTS["duplicity"]["full_schedule"]))
        if not out["full_schedule"]:
            raise InputError(
                field("full_schedule"),
                "is empty, and full_if_older_than is not set: no full backup would ever be taken",
                "Set full_schedule (e.g. monthly) or full_if_older_than (e.g. 1M)",
            )
    out["retention"] = _retention(field("retention"), job.get("retention"))


def _retention(field, value):
    """{"keep_full": N} or {"older_than": "6M"}: which duplicity chains the prune module keeps (never on the host)."""
    return None if value is None else _checked(field, contract.retention, value)


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
    name = _checked(_field(index, job, "name"), contract.job_name, job.get("name"))
    method = job.get("method")
    if method not in METHODS:
        raise InputError(_field(index, job, "method"), f"{method!r} is not a backup method", f"Choose one of {', '.join(METHODS)}")
    allowed = contract.fields_of(method)
    if job.get("keep") is not None and "keep" not in allowed:
        # Says why, rather than only that keep is not an option of this method.
        retention.keep_policy(_field(index, job, "keep"), job["keep"], method)
    unknown = set(job) - allowed
    if unknown:
        raise InputError(
            _field(index, job, sorted(unknown)[0]),
            f"is not an option of {method} jobs",
            f"Remove it; {method} jobs take {', '.join(sorted(allowed))}",
        )
    given = {k: v for k, v in job.items() if v is not None}
    out = {**contract.job_defaults(method), **given}

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
    out["nice"] = _int(field("nice"), out["nice"], contract.integer, -20, 19)
    _checked(field("io_scheduling_class"), contract.choice, out["io_scheduling_class"], contract.IO_CLASSES)
    out["io_scheduling_priority"] = _int(field("io_scheduling_priority"), out["io_scheduling_priority"], contract.integer, 0, 7)
    out["part_size_mb"] = _int(field("part_size_mb"), out["part_size_mb"], contract.part_size_mb)
    out["max_concurrency"] = _int(field("max_concurrency"), out["max_concurrency"], contract.max_concurrency)
    if out["upload_limit"] is not None:
        out["upload_limit"] = _checked(field("upload_limit"), contract.upload_limit, out["upload_limit"])
    out["progress_interval"] = _int(field("progress_interval"), out["progress_interval"], contract.progress_interval)
    out["stop_services"] = [_unit(field("stop_services"), s) for s in _string_list(field("stop_services"), out["stop_services"])]
    out["pre_commands"] = [_one_line(field("pre_commands"), c, "a shell command") for c in _string_list(field("pre_commands"), out["pre_commands"])]
    out["read_write_paths"] = [_absolute_path(field("read_write_paths"), p) for p in _string_list(field("read_write_paths"), out["read_write_paths"])]
    if not isinstance(out["enabled"], bool):
        raise InputError(field("enabled"), f"{out['enabled']!r} is not true or false", "Use true or false")
    if "description" in out:
        out["description"] = _one_line(field("description"), out["description"], "one line of text")
    if "max_age" in out:
        # Read by the freshness playbook, checked here so a typo fails at deploy time.
        out["max_age"] = _one_line(field("max_age"), str(out["max_age"]), "a time span")
        parse_duration(out["max_age"], field("max_age"))
    if out.get("keep") is not None:
        # Read by the prune module on the control node, checked here so a typo fails at deploy time.
        out["keep"] = retention.keep_policy(field("keep"), out["keep"], method)
    if "ping_url" in out:
        # The contract's problems never repeat the URL: its path is the check's secret.
        out["ping_url"] = _checked(field("ping_url"), contract.ping_url, out["ping_url"])
    if "metrics_dir" in out:
        out["metrics_dir"] = _absolute_path(field("metrics_dir"), out["metrics_dir"])

    if method in ("stream", "archive"):
        out["command"] = _one_line(field("command"), job.get("command"), "the backup command")
    if method in ("stream", "archive", "duplicity"):
        if out["run_as"] is not None:
            out["run_as"] = _checked(field("run_as"), contract.user_name, str(out["run_as"]))
    if method == "stream":
        _checked(field("compression"), contract.choice, out["compression"], contract.COMPRESSIONS)
        if out["compression"] == "none":
            out["compression_level"] = None
        else:
            level = out["compression_level"]
            level = int(level) if isinstance(level, str) and level.strip().isdigit() else level
            out["compression_level"] = _checked(field("compression_level"), contract.compression_level, out["compression"], level)
        out["object_name"] = _checked(field("object_name"), contract.object_name, job.get("object_name", name))
    if method in PUBLIC_KEY_OPTIONS:
        out["encryption"] = _encryption(field("encryption"), out["encryption"], method)
    if method == "duplicity":
        _duplicity_fields(given, out, field, access)
        _duplicity_reads(name, field("method"), access)
    if method == "archive":
        out["archive_dir"] = _checked(field("archive_dir"), contract.dedicated_directory, job.get("archive_dir"))
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
            allowed = contract.fields_of(job.get("method"))
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


def runner_config(job, access, host, credentials_file, config_dir=contract.CONFIG_DIR):
    """The runner's JSON config of one normalized job. ``access`` is what the aws role handed the
    host (bucket, prefix, region, endpoint, alert topic); it holds no secret, nor does this (a ping
    URL is in a file of its own, ``ping_url_file``). ``credentials_file`` is where the host keeps its
    key (used when systemd cannot pass it)."""
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
        "unit": contract.service_name(job["name"]),
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
        "upload_limit": job["upload_limit"],
        "progress_interval": job["progress_interval"],
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
    ):
        if key in contract.fields_of(job["method"]):
            config[key] = job.get(key)
    if job["method"] == "duplicity":
        config["duplicity_action"] = "incremental"
    if "encryption" in contract.fields_of(job["method"]):
        config["encryption"] = public_encryption(job["encryption"])
    # Only when set: the configs of jobs without them stay as they were.
    if job.get("ping"):
        config["ping_url_file"] = contract.ping_url_path(job["name"], config_dir)
    if job.get("metrics_dir"):
        config["metrics_dir"] = job["metrics_dir"]
        config["max_age_seconds"] = parse_duration(job["max_age"]) if job.get("max_age") else contract.DEFAULT_MAX_AGE_SECONDS
    return checked_runner_config(config)


def checked_runner_config(config):
    """``config`` as the runner will read it, checked by the runner's own check (the contract's): a
    value the host would refuse fails here, naming the job and the field, before the host changes."""
    try:
        contract.runner_config(config)
    except contract.ConfigFieldError as error:
        raise InputError(f"jobs[{config.get('job')}].{error.field}", error.problem, error.fix or "Fix it") from None
    return config


def _refuse_secret_source(job, config_dir):
    """A sync or duplicity job of the directory that holds the host's key and passphrases: the runner
    refuses it (and excludes it from a job of a directory above it)."""
    for field in ("sync_dir", "source_dir"):
        if job.get(field) and job[field].rstrip("/") == config_dir.rstrip("/"):
            raise InputError(
                f"jobs[{job['name']}].{field}",
                f"names {job[field]}, where the host keeps its AWS key and passphrases: it is never backed up",
                "Back up another directory (a directory above it is fine: the key directory is then left out)",
            )


def public_encryption(encryption):
    """What may be shown of a job's encryption: the method and age's public keys, never a passphrase
    (the runner gets that as a systemd credential)."""
    return {k: v for k, v in encryption.items() if k != "passphrase"} if encryption else None


def job_units(jobs, access, host, defaults=None, config_dir=contract.CONFIG_DIR):
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
        _refuse_secret_source(job, config_dir)
        packages = list(contract.METHOD_PACKAGES[job["method"]])
        if job.get("metrics_dir"):
            writable.append(job["metrics_dir"])
        if encryption:
            packages.append(contract.ENCRYPTION_PACKAGES[encryption["method"]])
            job = dict(job, encryption=public_encryption(encryption))
        # The ping URL's path is a secret: the role writes it from the job itself (tasks/main.yml).
        ping = bool(job.pop("ping_url", None))
        job["ping"] = ping
        config = runner_config(job, access, host, f"{config_dir}/aws-credentials", config_dir)
        unit = {
            "name": job["name"],
            "service": contract.service_name(job["name"]),
            "timer": contract.timer_name(job["name"]),
            "config_path": contract.config_path(job["name"], config_dir),
            "config": config,
            "job": job,
            "schedule": job["schedule"],
            "schedule_field": "schedule",
            "kind": "incremental" if job["method"] == "duplicity" else "backup",
            "read_write_paths": writable,
            "encryption": encryption["method"] if encryption else None,
            "passphrase_path": contract.passphrase_path(job["name"], config_dir),
            "ping": ping,
            "ping_url_path": contract.ping_url_path(job["name"], config_dir),
            "packages": packages,
        }
        result.append(unit)
        if len(unit_names(job)) > 1:
            name = job["name"] + FULL_SUFFIX
            full_config = dict(config, unit=contract.service_name(name), duplicity_action="full", full_if_older_than=None)
            result.append(
                dict(
                    unit,
                    name=name,
                    service=contract.service_name(name),
                    timer=contract.timer_name(name),
                    config_path=contract.config_path(name, config_dir),
                    config=full_config,
                    schedule=job["full_schedule"],
                    schedule_field="full_schedule",
                    kind="full",
                )
            )
    return result


def host_inspection(units, layout=None):
    """What the jobs role asks the host (files/inspect_host.py) before it changes anything there: the
    users jobs run as, the directories they use, and whether each job's config is there already. With
    ``layout`` (the role's paths, see host_changes) also everything host_changes compares: the systemd
    version, the schedules, the packages, the role's files and directories, what its directories hold
    and the timers' states. A passphrase file is asked about only whether it exists: the host never
    returns a digest of a secret that may be short enough to guess."""
    users = sorted({unit["config"]["run_as"] for unit in units if unit["config"].get("run_as")})
    paths = [unit["config"][field] for unit in units for field in HOST_DIRECTORIES if unit["config"].get(field)]
    paths = set(paths) | {unit["config_path"] for unit in units}
    if layout is None:
        return {"users": users, "paths": sorted(paths)}
    paths |= {unit["passphrase_path"] for unit in units if unit["encryption"] != "passphrase"}
    paths |= {unit["ping_url_path"] for unit in units if not unit["ping"]}
    wanted_files = [item["dest"] for item in _package_files(layout)] + [layout["runner"], layout["credentials_path"], layout["alert_credentials_path"]]
    wanted_files += [unit["config_path"] for unit in units] + unit_files(units, layout)
    return {
        "users": users,
        "paths": sorted(paths),
        "schedules": sorted({expression for unit in units for expression in unit["schedule"]}),
        "packages": wanted_packages(units, layout),
        "files": sorted(set(wanted_files) | {item["path"] for item in _managed_directories(layout)}),
        "listings": {
            "package": {"path": _package_dir(layout), "what": "files"},
            "library": {"path": layout["runner_library"], "what": "directories"},
            "units": {"path": layout["unit_dir"], "what": "names", "patterns": [f"{UNIT_PREFIX}-*.service", f"{UNIT_PREFIX}-*.timer"]},
        },
        "timers": [unit["timer"] for unit in units],
    }


# The directories a job names on the host, checked there before deployment (host_problems).
HOST_DIRECTORIES = ("archive_dir", "sync_dir", "source_dir", "metrics_dir")


def host_problems(units, facts, config_dir=contract.CONFIG_DIR):
    """What the host's facts (inspect_host.py's answer to host_inspection) say against the jobs, each a
    message naming the job, the field and the fix: what the runner would refuse at run time, or what
    would make it delete what is not the job's own."""
    problems = []
    for unit in units:
        config = unit["config"]
        label = f"jobs[{config['job']}]"
        if config.get("run_as") and not facts["users"].get(config["run_as"], True):
            problems.append(
                f"{label}.run_as: {config['run_as']} is not a user on this host. Create the user first (the application's package usually does), or fix run_as"
            )
        for field in HOST_DIRECTORIES:
            path = config.get(field)
            if not path:
                continue
            fact = facts["paths"].get(path) or {"real": path, "exists": False}
            where = path if fact["real"] == path else f"{path} (which leads to {fact['real']})"
            if field == "archive_dir":
                problem = _archive_dir_problem(config, fact, facts["paths"].get(unit["config_path"], {}).get("exists"))
            elif field == "metrics_dir":
                problem = None if fact["exists"] and fact.get("isdir") else (
                    "is not a directory on this host. Install node_exporter's textfile collector first (Debian's prometheus-node-exporter"
                    " reads /var/lib/prometheus/node-exporter), or fix the path"
                )
            elif not fact["exists"] or not fact.get("isdir"):
                problem = "is not a directory on this host. Create it first, or fix the path"
            elif fact["real"].rstrip("/") == config_dir.rstrip("/"):
                problem = "is where the host keeps its AWS key and passphrases: it is never backed up. Back up another directory"
            else:
                problem = None
            if problem:
                problems.append(f"{label}.{field}: {where} {problem}")
    return sorted(set(problems))


def _archive_dir_problem(config, fact, deployed):
    """Everything in archive_dir is uploaded, then deleted after every run, as root: it must be a
    directory of the job's own. A missing one is created by the role."""
    try:
        contract.dedicated_directory(fact["real"])
    except contract.FieldError as error:
        return f"{error.problem}. Use a directory of the job's own"
    owner = config.get("run_as") or "root"
    if not fact["exists"]:
        return None
    if not fact["isdir"]:
        return "exists and is not a directory. Use a new path (the role creates it)"
    if fact["owner"] != owner:
        return f"belongs to {fact['owner']}, but the command runs as {owner} and writes there. Use a new path (the role creates it), or make it {owner}'s"
    if not fact["empty"] and not deployed:
        return (
            "is not empty, and this job has not used it yet: everything in it would be deleted after the first run."
            " Use a new path (the role creates it), or empty it first"
        )
    return None


# ------------------------------------------------------------------ what changes on the host, from its facts

CALENDAR_FIX = "Use forms like daily, weekly, 'Mon *-*-* 02:00' or '*-*-01 00:00' (man systemd.time)"
# LoadCredential= (how the key and a passphrase reach the runner) and FixedRandomDelay=.
SYSTEMD_CREDENTIALS = 247
RUNNING = ("active", "activating")


def wanted_packages(units, layout):
    """The runner's packages, then what some job needs (awscli for sync, duplicity, age or gpg)."""
    packages = list(layout["packages"])
    for unit in units:
        packages += [name for name in unit["packages"] if name not in packages]
    return packages


def config_text(config):
    """A runner config as the role writes it (as to_nice_json would, plus a final newline)."""
    return json.dumps(config, indent=4, sort_keys=True, separators=(",", ": ")) + "\n"


def local_sha1(path):
    """SHA-1 of a file on the control node, None if there is none (the file itself never enters a variable)."""
    digest = hashlib.sha1()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 16), b""):
                digest.update(block)
    except (OSError, TypeError):
        return None
    return digest.hexdigest()


def _package_dir(layout):
    return f"{layout['runner_library']}/{layout['runner_version']}/systemd_s3_backup"


def _package_files(layout):
    return [
        {"src": f"{layout['package_source']}/{name}", "dest": f"{_package_dir(layout)}/{name}", "mode": "0644"}
        for name in layout["package_files"]
    ]


def _managed_directories(layout):
    """The package's directories (one per version) and the configuration directories, root's."""
    package_dir = _package_dir(layout)
    subdirectories = sorted({os.path.dirname(name) for name in layout["package_files"]} - {""})
    return [{"path": package_dir, "mode": "0755"}] + [{"path": f"{package_dir}/{name}", "mode": "0755"} for name in subdirectories] + [
        {"path": layout["config_dir"], "mode": "0750"},
        {"path": f"{layout['config_dir']}/jobs", "mode": "0750"},
    ]


def unit_files(units, layout):
    """Every unit file the role writes: the alert unit, each job's service and timer."""
    names = [contract.ALERT_UNIT] + [name for unit in units for name in (unit["service"], unit["timer"])]
    return [f"{layout['unit_dir']}/{name}" for name in names]


def _is_root_file(fact, kind, mode, sha1=None):
    return (
        fact.get("type") == kind
        and fact.get("mode") == mode
        and fact.get("owner") == "root"
        and fact.get("group") == "root"
        and (sha1 is None or fact.get("sha1") == sha1)
    )


def schedule_problems(units, facts):
    """The OnCalendar expressions the host's systemd-analyze refused, naming job and field."""
    problems = []
    for unit in units:
        for expression in unit["schedule"]:
            error = facts["schedules"].get(expression)
            if error:
                problems.append(
                    f"jobs[{unit['job']['name']}].{unit['schedule_field']}: {json.dumps(expression)} is not a valid OnCalendar expression ({error}). "
                    + CALENDAR_FIX
                )
    return problems


def systemd_problems(units, facts):
    """Passphrase jobs where systemd cannot pass the passphrase as a credential."""
    version = facts["systemd_version"]
    return [
        f"jobs[{unit['name']}].encryption: encrypts with a passphrase, which reaches the runner only as a systemd credential "
        f"(LoadCredential=, systemd {SYSTEMD_CREDENTIALS} or later), and this host has systemd {version}. Use encryption.age_recipients instead"
        for unit in units
        if unit["encryption"] == "passphrase" and version < SYSTEMD_CREDENTIALS
    ]


def host_changes(units, facts, layout, rendered, host, key_source="", key_created=False, check_mode=False, alert_key_source=""):
    """What the jobs role changes on a host, from what inspect_host.py found there (facts, the answer to
    host_inspection(units, layout)): only what differs, so an idempotent run changes nothing and asks the
    host nothing more. Returns
      problems      every reason to change nothing (schedules, systemd, host_problems, the missing key);
      packages      the wanted Debian packages not installed;
      directories   to create or put right ({path, mode, owner, group?});
      files         to write ({dest, mode, src or content, validate?, reload?}): the runner package's
                    modules, the rendered files (launcher, units), the runner configs;
      key           whether the host's key is to be copied (key_available: the control node has it);
      removals      files of the runner package it no longer has, passphrases and ping URLs no job uses, and the units,
                    configs and passphrases of jobs no longer listed ({path, reload?});
      old_runners   the runner packages of other versions (removed when no job runs);
      undeclared_timers  timers of jobs no longer listed, stopped before their files go;
      timers        timers not in their job's state ({timer, enabled});
      check_bucket  whether the bucket check runs: only when the host's key or a runner config (which
                    names bucket, prefix, region and endpoint) changes, or the key is new; otherwise the
                    run that deployed them checked them, and the aws role (site.yml) made the bucket right.
    ``layout``: the role's paths (config_dir, credentials_path, unit_dir, runner, runner_library,
    runner_version, package_source, package_files relative to it, packages, remove_undeclared).
    ``rendered``: the files rendered from templates ({dest, content, mode, validate?, reload?}).
    ``key_source``: the host's key on the control node ('' when the host has none, e.g. a role);
    ``alert_key_source``: the fleet's publish-only alert key there ('' when there is none): ``alert_key``
    says whether to copy it, and a host that has one no longer wanted gets it removed."""
    files_on_host = facts["files"]
    problems = schedule_problems(units, facts) + systemd_problems(units, facts) + host_problems(units, facts, layout["config_dir"])
    key_sha1 = local_sha1(key_source) if key_source else None
    alert_key_sha1 = local_sha1(alert_key_source) if alert_key_source else None
    for source, sha1, whose in ((key_source, key_sha1, f"the key of {host}"), (alert_key_source, alert_key_sha1, "the fleet's alert publisher key")):
        if source and sha1 is None and not check_mode:
            problems.append(
                f"{source} ({whose}) does not exist on the control node. "
                "Run the systemd_s3.backup.aws role first (site.yml does); it writes the key there."
            )
    installed = facts["packages"]
    directories = [dict(item, owner="root", group="root") for item in _managed_directories(layout) if not _is_root_file(
        files_on_host.get(item["path"], {}), "directory", item["mode"])]
    # A missing archive_dir is made the job's; one that exists was checked, and is never chowned or chmodded.
    for unit in units:
        archive_dir = unit["config"].get("archive_dir")
        if archive_dir and unit["kind"] != "full" and not facts["paths"].get(archive_dir, {}).get("exists"):
            directories.append({"path": archive_dir, "mode": "0700", "owner": unit["config"]["run_as"] or "root"})
    configs = [{"dest": unit["config_path"], "content": config_text(unit["config"]), "mode": "0640"} for unit in units]
    files = []
    for item in _package_files(layout) + configs + list(rendered):
        sha1 = local_sha1(item["src"]) if "src" in item else hashlib.sha1(item["content"].encode("utf-8")).hexdigest()
        if not _is_root_file(files_on_host.get(item["dest"], {}), "file", item["mode"], sha1):
            files.append(item)
    write_key = bool(key_sha1) and not _is_root_file(files_on_host.get(layout["credentials_path"], {}), "file", "0600", key_sha1)
    alert_on_host = files_on_host.get(layout["alert_credentials_path"], {})
    write_alert_key = bool(alert_key_sha1) and not _is_root_file(alert_on_host, "file", "0600", alert_key_sha1)
    removals = _removals(units, facts, layout)
    if not alert_key_source and alert_on_host.get("type"):
        removals.append({"path": layout["alert_credentials_path"]})
    undeclared = _undeclared(units, facts, layout)
    removals += [{"path": f"{layout['unit_dir']}/{name}", "reload": True} for name in undeclared]
    for job in [name[len(UNIT_PREFIX) + 1:-len(".service")] for name in undeclared if name.endswith(".service")]:
        removals += [{"path": contract.config_path(job, layout["config_dir"])}, {"path": contract.passphrase_path(job, layout["config_dir"])}]
        removals.append({"path": contract.ping_url_path(job, layout["config_dir"])})
    library = facts["listings"].get("library") or []
    return {
        "problems": problems,
        "packages": [name for name in wanted_packages(units, layout) if not installed.get(name)],
        "directories": directories,
        "files": files,
        "key": write_key,
        "key_available": bool(key_sha1),
        "alert_key": write_alert_key,
        "removals": removals,
        "old_runners": [{"path": f"{layout['runner_library']}/{name}"} for name in library if name != str(layout["runner_version"])],
        "undeclared_timers": [name for name in undeclared if name.endswith(".timer")],
        "timers": _timers(units, facts, layout, check_mode),
        "check_bucket": bool(units) and (write_key or key_created or any(item in files for item in configs)),
    }


def _removals(units, facts, layout):
    """Files of the runner package it no longer has (a method module left behind would still be loaded;
    Python's caches stay), and passphrases and ping URLs no job uses any more."""
    package_files = set(layout["package_files"])
    stale = [name for name in facts["listings"].get("package") or [] if name not in package_files and not name.endswith(".pyc")]
    removals = [{"path": f"{_package_dir(layout)}/{name}"} for name in stale]
    removals += [
        {"path": unit["passphrase_path"]}
        for unit in units
        if unit["encryption"] != "passphrase" and facts["paths"].get(unit["passphrase_path"], {}).get("exists")
    ]
    return removals + [{"path": unit["ping_url_path"]} for unit in units if not unit["ping"] and facts["paths"].get(unit["ping_url_path"], {}).get("exists")]


def _undeclared(units, facts, layout):
    """The s3-backup-* units in the unit directory that no listed job has (the alert unit is the role's)."""
    if not layout["remove_undeclared"]:
        return []
    declared = {contract.ALERT_UNIT} | {name for unit in units for name in (unit["service"], unit["timer"])}
    return [name for name in facts["listings"].get("units") or [] if name not in declared]


def _timers(units, facts, layout, check_mode):
    """Timers whose state is not their job's: enabled and started, or stopped and disabled, as
    ansible.builtin.systemd_service would judge it. In check mode a timer not installed yet cannot be
    asked about (installing it is reported)."""
    changes = []
    for unit in units:
        want = unit["job"]["enabled"]
        state = facts["timers"].get(unit["timer"]) or {}
        if check_mode and facts["files"].get(f"{layout['unit_dir']}/{unit['timer']}", {}).get("type") is None:
            continue
        active = state.get("active")
        right = active in RUNNING if want else active not in RUNNING + ("deactivating",)
        if state.get("enabled") != want or not right:
            changes.append({"timer": unit["timer"], "enabled": want})
    return changes
