# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The contract between the control node and the hosts: the one home of every rule both sides apply.

- every field of a backup job (its default, its check, the methods that use it, its documentation),
- the runner's JSON config and how it is checked,
- the bucket layout (``<prefix>/<job>/<run>/``, ``data/``, ``duplicity/``) and the data tag,
- the manifest (the commit marker of a run) and its format version,
- the runner's exit statuses, the host's paths and the unit names.

Standard library only, Python 3.9 or later: the collection imports it on the control node (the jobs
role's checks, backups_info, the policies) and the jobs role ships this very file to every host, where
the runner (``systemd_s3_backup``) imports it. docs/format.md describes the same in prose.

Checks raise FieldError(problem, fix); each side turns it into its own error naming the field (the
control node ``jobs[<name>].<field>``, the runner ``config field '<field>'``). Checks that need the host
(does the user exist, where does a symlink lead) are the runner's alone, and the jobs role repeats them
on the host before it changes anything."""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import json
import posixpath
import re

# The version of the collection, of the runner and of the host side's files.
VERSION = "0.2.0"

# ---------------------------------------------------------------------------------------------- exit statuses

# sysexits.h, as the runner's units and the alert report them; a failing command's own status
# (128+N when killed by signal N) is passed on unchanged.
EX_OK = 0
EX_DATAERR = 65  # restore: the backup is damaged or incomplete (no manifest, sha256 mismatch, ...)
EX_UNAVAILABLE = 69  # the S3 endpoint cannot be reached
EX_SOFTWARE = 70  # a bug in the runner
EX_IOERR = 74  # another S3 or I/O failure
EX_TEMPFAIL = 75  # a stopped service did not start again; restore: objects are thawing
EX_NOPERM = 77  # access denied or bad credentials
EX_CONFIG = 78  # bad config, or a program the job needs is missing
EXIT_STATUSES = {
    EX_OK: "success",
    EX_DATAERR: "the backup is damaged or incomplete",
    EX_UNAVAILABLE: "the S3 endpoint cannot be reached",
    EX_SOFTWARE: "a bug in the runner",
    EX_IOERR: "an S3 or I/O failure",
    EX_TEMPFAIL: "a stopped service did not start again (restore: objects are still thawing)",
    EX_NOPERM: "access denied or bad credentials",
    EX_CONFIG: "bad config or a missing program",
}

# ---------------------------------------------------------------------------------------------- host paths and units

CONFIG_DIR = "/etc/systemd-s3-backup"  # root only: the host's key, passphrases, job configs
JOBS_DIR = CONFIG_DIR + "/jobs"  # <unit name without prefix>.json: the runner's configs
CREDENTIALS_PATH = CONFIG_DIR + "/aws-credentials"
# The fleet's publish-only key, which the alert unit passes instead (the host's own key may be what failed).
ALERT_CREDENTIALS_PATH = CONFIG_DIR + "/alert-credentials"
RUNNER_PATH = "/usr/local/sbin/systemd-s3-backup"  # the launcher the units call
LIBRARY_DIR = "/usr/local/lib/systemd-s3-backup"  # <VERSION>/systemd_s3_backup/: the runner package
STATE_ROOT = "/var/lib/s3-backup"  # StateDirectory=s3-backup/<job>: lock, last success, duplicity cache
RUNTIME_ROOT = "/run/s3-backup"  # RuntimeDirectory=s3-backup/<unit name without prefix>: the run's GPG home
SECRET_SCRATCH = "/run/systemd-s3-backup"  # restores: GPG homes and keys in memory, never on disk
# systemd credentials (LoadCredential=) the units pass to the runner.
AWS_CREDENTIAL = "aws"
PASSPHRASE_CREDENTIAL = "passphrase"

UNIT_PREFIX = "s3-backup"
# A duplicity job's full backups run as a unit of their own: <job>-full.
FULL_SUFFIX = "-full"
ALERT_UNIT = UNIT_PREFIX + "-alert@.service"


def service_name(name):
    """The service of a job (or of a duplicity job's fulls, ``name`` ending in FULL_SUFFIX)."""
    return f"{UNIT_PREFIX}-{name}.service"


def timer_name(name):
    return f"{UNIT_PREFIX}-{name}.timer"


def config_path(name, config_dir=CONFIG_DIR):
    return f"{config_dir}/jobs/{name}.json"


def passphrase_path(job, config_dir=CONFIG_DIR):
    return f"{config_dir}/{job}.passphrase"


def ping_url_path(job, config_dir=CONFIG_DIR):
    """A job's ping URL (root only, 0600): it holds the check's secret, so it is never in a config."""
    return f"{config_dir}/{job}.ping-url"


# node_exporter's textfile collector reads <metrics_dir>/*.prom; one file per job, every metric named so.
METRICS_PREFIX = "systemd_s3_backup_"
# What metrics report as a job's max_age when it sets none: the freshness playbook's default (2d).
DEFAULT_MAX_AGE_SECONDS = 2 * 24 * 3600


def metrics_file_name(job):
    return f"{METRICS_PREFIX}{job}.prom"


def library_path(version=VERSION):
    return f"{LIBRARY_DIR}/{version}"


# ---------------------------------------------------------------------------------------------- bucket layout

# <prefix>/<job>/<run folder>/<objects> and manifest.json   stream and archive runs
# <prefix>/<job>/data/...                                   a sync job's mirror (versioned)
# <prefix>/<job>/duplicity/duplicity-*                      a duplicity job's chains
RUN_FOLDER_FORMAT = "%Y%m%dT%H%M%SZ"
RUN_FOLDER = re.compile(r"\d{8}T\d{6}Z")
RUN_FOLDER_GLOB = "????????T??????Z"  # the same, as an IAM resource pattern
MANIFEST_NAME = "manifest.json"
SYNC_FOLDER = "data"
DUPLICITY_FOLDER = "duplicity"
# The runner's pre-flight upload (opened and aborted, never stored) under the run's folder.
ACCESS_CHECK_NAME = ".access-check"
# The object tag of data objects (not manifests, not duplicity's manifests and signatures): the bucket's
# lifecycle moves only tagged objects to the cold classes, so what a restore reads first stays readable.
DATA_TAG_KEY, DATA_TAG_VALUE = "systemd-s3-backup", "data"
DATA_TAG = f"{DATA_TAG_KEY}={DATA_TAG_VALUE}"
# Storage classes whose objects GetObject refuses (InvalidObjectState) until RestoreObject thawed them.
COLD_STORAGE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")
# Times in manifests and in this collection's output.
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# duplicity's file names (its file_naming): full/inc volumes and manifests, full/new signatures, the
# set's times (duplicity's default UTC form, like the run folders'), then optional suffixes (.gpg, .gz).
DUPLICITY_NAME = re.compile(
    r"duplicity-(?P<kind>full|inc|full-signatures|new-signatures)"
    r"\.(?P<first>\d{8}T\d{6}Z)(?:\.to\.(?P<second>\d{8}T\d{6}Z))?"
    r"\.(?:vol(?P<volume>\d+)\.difftar|(?P<manifest>manifest)|(?P<signatures>sigtar))(?:\.[A-Za-z0-9]+)*",
    re.IGNORECASE,
)


def duplicity_volume(name):
    """The DUPLICITY_NAME match of a volume's name (its data), else None."""
    match = DUPLICITY_NAME.fullmatch(name)
    return match if match and match.group("volume") else None


def job_prefix(prefix, job):
    """``<prefix>/<job>``: everything of one job of one host."""
    return "/".join(part for part in (prefix.strip("/"), job) if part)


def run_folder(started):
    return started.strftime(RUN_FOLDER_FORMAT)


def run_prefix(prefix, job, started):
    return f"{job_prefix(prefix, job)}/{run_folder(started)}"


def manifest_key(run):
    return f"{run}/{MANIFEST_NAME}"


def sync_prefix(prefix, job):
    return f"{job_prefix(prefix, job)}/{SYNC_FOLDER}"


def duplicity_prefix(prefix, job):
    return f"{job_prefix(prefix, job)}/{DUPLICITY_FOLDER}"


def iso(moment):
    return moment.strftime(ISO_FORMAT)


# ---------------------------------------------------------------------------------------------- manifest

# Version 1 (runner 0.1.x) had no version field; version 2 adds it ("manifest_version") and nothing
# else, so a version 1 manifest reads as version 2. A newer version is refused: its meaning is unknown.
MANIFEST_VERSION = 2
MANIFEST_VERSIONS = (1, 2)
# Every manifest the runner writes has all of new_manifest's fields; a reader needs its objects, and
# checks the rest where it uses them (the restore: method, compression, encryption, finished).
MANIFEST_REQUIRED = ("objects",)
OBJECT_REQUIRED = ("key", "size", "sha256")


class ManifestError(ValueError):
    """A manifest that is not one: its run is not a complete backup."""


def new_manifest(config, started, finished, objects):
    """The manifest of a stream, archive or sync run (duplicity's own manifests mark its sets)."""
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "job": config["job"],
        "host": config["host"],
        "method": config["method"],
        "started": iso(started),
        "finished": iso(finished),
        "objects": objects,
        "compression": config["compression"] if config["method"] == "stream" else "none",
        # Which key opens the objects: age's recipients are public keys; a passphrase is not recorded.
        "encryption": config["encryption"],
        "runner_version": VERSION,
    }
    if config["method"] == "sync":
        manifest["source"] = config["sync_dir"]
    return manifest


def read_manifest(raw):
    """A manifest (parsed JSON) of any version this collection knows, as the current version; raises
    ManifestError saying what is wrong."""
    if not isinstance(raw, dict):
        raise ManifestError("is not a JSON object")
    version = raw.get("manifest_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version not in MANIFEST_VERSIONS:
        raise ManifestError(
            f"has manifest_version {version!r}, which this collection ({VERSION}) does not know: it was written by a newer runner; upgrade the collection"
        )
    missing = [name for name in MANIFEST_REQUIRED if name not in raw]
    if missing:
        raise ManifestError(f"lacks {', '.join(missing)}")
    if not isinstance(raw["objects"], list) or not all(
        isinstance(entry, dict) and all(name in entry for name in OBJECT_REQUIRED) for entry in raw["objects"]
    ):
        raise ManifestError(f"does not list its objects with {', '.join(OBJECT_REQUIRED[:-1])} and {OBJECT_REQUIRED[-1]}")
    manifest = dict(raw, manifest_version=MANIFEST_VERSION)
    manifest.setdefault("compression", "none")
    manifest.setdefault("encryption", None)
    return manifest


# ---------------------------------------------------------------------------------------------- field checks


class FieldError(ValueError):
    """A value a field does not accept: what is wrong, and how to fix it. Never repeats a secret."""

    def __init__(self, problem, fix="", at=None):
        super().__init__(problem)
        # ``at``: the part of the field that is wrong (retention's keep_full), named after the field.
        self.problem, self.fix, self.at = problem, fix, at


METHODS = ("stream", "archive", "sync", "duplicity")
COMPRESSIONS = ("zstd", "gzip", "none")
# compression: (default level, lowest, highest); zstd levels above 19 would need --ultra.
COMPRESSION_LEVELS = {"zstd": (3, 1, 19), "gzip": (6, 1, 9)}
COMPRESSION_SUFFIXES = {"zstd": ".zst", "gzip": ".gz", "none": ""}
ENCRYPTION_SUFFIXES = {"age": ".age", "passphrase": ".gpg"}
# Which encryption each method can do: the runner's own streams with age or gpg's symmetric mode,
# duplicity with GPG public keys or a passphrase.
ENCRYPTIONS_BY_METHOD = {"stream": ("age", "passphrase"), "archive": ("age", "passphrase"), "duplicity": ("gpg", "passphrase")}
# The operator's option of each method's public-key encryption (jobs_list[].encryption).
PUBLIC_KEY_OPTIONS = {"stream": "age_recipients", "archive": "age_recipients", "duplicity": "gpg_public_keys"}
# Debian packages the runner needs for a method, and for each encryption.
METHOD_PACKAGES = {"stream": [], "archive": [], "sync": ["awscli"], "duplicity": ["duplicity"]}
ENCRYPTION_PACKAGES = {"age": "age", "passphrase": "gpg", "gpg": "gpg"}
IO_CLASSES = ("best-effort", "idle", "realtime")
DUPLICITY_ACTIONS = ("incremental", "full")
# gpg derives the key from it: short ones can be guessed offline by whoever gets the bucket.
PASSPHRASE_MIN_LENGTH = 20
S3_MIN_PART_MB, S3_MAX_PART_MB = 5, 5120
MAX_CONCURRENCY = 32
# upload_limit: bytes per second, a whole number or one with a binary unit. Below the lowest, a number
# meant in MiB/s but written without its unit ("2") would make a 16 MiB part take days.
UPLOAD_LIMIT = re.compile(r"(\d+(?:\.\d+)?)([kKmMgG]?)")
UPLOAD_LIMIT_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
UPLOAD_LIMIT_MIN = 64 * 1024
# progress_interval: seconds between the journal's progress lines of an upload (0: one per part).
PROGRESS_INTERVAL_MAX = 86400
# Everything in archive_dir is uploaded and then deleted, so it must be a dedicated directory.
PROTECTED_DIRECTORIES = frozenset(
    ("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var")
    + (CONFIG_DIR, STATE_ROOT, "/etc/systemd", "/usr/local", "/mnt", "/media")
    + ("/var/backups", "/var/cache", "/var/lib", "/var/log", "/var/mail", "/var/opt", "/var/spool", "/var/tmp", "/var/www")
)

JOB_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
UNIT_NAME = re.compile(r"[A-Za-z0-9:_.@\\-]+\.(service|socket|target|mount|timer|path)")
USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}\$?")
# Object names and script directory names: one safe path segment.
OBJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9!_.()'=@,+-]+")
PREFIX_MAX_LENGTH = 900
REGION = re.compile(r"[a-z0-9-]+")  # as the SDKs accept them (eu-west-1, us-gov-west-1, ...)
TOPIC_NAME = re.compile(r"[A-Za-z0-9_-]{1,256}")
TOPIC_ARN = re.compile(rf"arn:(aws[a-z-]*):sns:[a-z0-9-]+:\d{{12}}:{TOPIC_NAME.pattern}")
ENDPOINT_URL = re.compile(r"https?://[^\s/]+(/\S*)?")
# A ping URL: http(s), a host (and port), a path; the runner appends /start or /fail, so no query or fragment.
PING_URL = re.compile(r"(?i:https?)://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~!$&'()*+,;=:%@/-]*)?")
# duplicity's time intervals (man duplicity, TIME FORMATS): 1M, 2W, 1Y6M, 30D.
DUPLICITY_INTERVAL = re.compile(r"(\d+[smhDWMY])+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# age recipients: an X25519 key (bech32, "age1" and 58 characters) or an SSH public key line.
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_AGE_RECIPIENT = re.compile(rf"age1[{_BECH32}]{{58}}")
_SSH_RECIPIENT = re.compile(r"(ssh-ed25519|ssh-rsa) ([A-Za-z0-9+/]+={0,2})( [^\x00-\x1f\x7f]*)?")
PGP_BLOCK = re.compile(r"\s*-----BEGIN PGP (PUBLIC|PRIVATE) KEY BLOCK-----\r?\n.+?-----END PGP \1 KEY BLOCK-----\s*", re.S)


def one_line(value, what="text"):
    if not isinstance(value, str) or not value.strip():
        raise FieldError(f"must be a non-empty string ({what})")
    if _CONTROL.search(value):
        raise FieldError(f"{value!r} contains a newline or control character", "Write it on one line")
    return value.strip()


def text(value):
    """Free text such as a shell script: not empty, no NUL byte."""
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise FieldError("must be a non-empty string")
    return value


def integer(value, lowest, highest):
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(f"{value!r} is not a whole number", f"Use a number from {lowest} to {highest}")
    if not lowest <= value <= highest:
        raise FieldError(f"{value} is out of range", f"Use a number from {lowest} to {highest}")
    return value


def choice(value, choices):
    if value not in choices:
        raise FieldError(f"{value!r} is unknown", f"Choose one of {', '.join(choices)}")
    return value


def matching(value, pattern, what, fix):
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise FieldError(f"{value!r} is not {what}", fix)
    return value


def list_of(value, check):
    if not isinstance(value, list):
        raise FieldError(f"must be a list, not {type(value).__name__}", "Write it as a list")
    return [check(item) for item in value]


def absolute_path(value):
    """An absolute path below /, without '..', as /a/b (no trailing slash)."""
    path = one_line(value, "an absolute path")
    if not path.startswith("/") or ".." in path.split("/") or path.rstrip("/") == "":
        raise FieldError(f"{value!r} is not an absolute path below /", "Use a path like /var/backups/app")
    # normpath keeps a leading "//" (POSIX leaves its meaning open); Linux reads it as "/".
    return posixpath.normpath("/" + path.lstrip("/"))


def dedicated_directory(value):
    """archive_dir: everything in it is uploaded, then deleted, so no system directory. Where a
    symlink leads is the host's check (the runner's, repeated by the jobs role before it changes anything)."""
    path = absolute_path(value)
    if path in PROTECTED_DIRECTORIES:
        raise FieldError(
            f"is {path}, a system directory: everything in archive_dir is uploaded, then deleted", "Use a directory of its own, e.g. /var/backups/<job>"
        )
    return path


def job_name(value):
    return matching(
        value, JOB_NAME, "a valid job name", "Use 1-40 lowercase letters, digits, '-' or '_', starting with a letter or digit (it becomes a unit name)"
    )


def unit_name(value):
    return matching(one_line(value, "a unit name"), UNIT_NAME, "a systemd unit name", "Use a name like postgresql.service")


def service_unit(value):
    name = unit_name(value)
    if not name.endswith(".service"):
        raise FieldError(f"{value!r} is not a .service unit", "Use the job's service name, s3-backup-<job>.service")
    return name


def user_name(value):
    return matching(value, USER_NAME, "a user name", "Use an existing user such as postgres")


def object_name(value):
    return matching(value, OBJECT_NAME, "a safe object name", "Use 1-100 letters, digits, '.', '_' and '-', starting with a letter or digit, e.g. db.sql")


def bucket_name(value):
    return matching(value, BUCKET_NAME, "an S3 bucket name", "Use 3-63 lowercase letters, digits, '.' and '-'")


def prefix(value):
    """A key prefix as 'a/b' (no leading or trailing slash). Wildcards, '..' and empty segments are
    refused: in a policy they would widen access beyond the prefix."""
    fix = "Use slash-separated segments of letters, digits and !_.()'=@,+- such as 'backups/web1'"
    if not isinstance(value, str):
        raise FieldError(f"{value!r} is not a key prefix", fix)
    stripped = value.strip("/")
    if not stripped:
        raise FieldError("must not be empty: an empty prefix would grant access to the whole bucket", fix)
    for segment in stripped.split("/"):
        if segment in ("", ".", "..") or not PREFIX_SEGMENT.fullmatch(segment):
            raise FieldError(f"{value!r} has an unsafe segment {segment!r}", fix)
    if len(stripped) > PREFIX_MAX_LENGTH:
        raise FieldError(f"is longer than {PREFIX_MAX_LENGTH} characters", "Use a shorter prefix")
    return stripped


def region(value):
    return matching(value, REGION, "an AWS region", "Use a region such as eu-west-1")


def topic_arn(value):
    return matching(value, TOPIC_ARN, "an SNS topic ARN", "Use the ARN the systemd_s3.backup.alerts module returned")


def endpoint_url(value):
    return matching(value, ENDPOINT_URL, "an http:// or https:// URL", "Use e.g. https://s3.example.com")


def ping_url(value):
    """A healthchecks.io-style ping URL (https://hc-ping.com/<uuid>, or a self-hosted one). Its path
    is the check's secret: no problem repeats the value."""
    if not isinstance(value, str) or not value.strip():
        raise FieldError("must be a non-empty string (a ping URL)", "Use the check's ping URL, e.g. https://hc-ping.com/<uuid>")
    url = value.strip()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in ("http", "https"):
        raise FieldError("is not an http:// or https:// URL (the value is not shown: it holds the check's secret)", "Use e.g. https://hc-ping.com/<uuid>")
    if "@" in url.split("://", 1)[1].split("/", 1)[0]:
        raise FieldError("holds a user name or password before the host (not shown)", "Give the ping URL without credentials")
    if "?" in url or "#" in url:
        raise FieldError("has a query or fragment (not shown); /start and /fail are appended to the URL", "Give the check's base ping URL")
    if not PING_URL.fullmatch(url):
        raise FieldError("is not a valid URL: a host name, an optional port and a path without spaces (not shown)", "Use e.g. https://hc-ping.com/<uuid>")
    return url.rstrip("/")


def max_age_seconds(value):
    return integer(value, 1, 10 * 366 * 24 * 3600)


def duplicity_interval(value):
    fix = "Use a number and s, m, h, D, W, M or Y, e.g. 1M or 6M"
    return matching(one_line(str(value), "a duplicity time interval"), DUPLICITY_INTERVAL, "a duplicity time interval", fix)


def part_size_mb(value):
    return integer(value, S3_MIN_PART_MB, S3_MAX_PART_MB)


def max_concurrency(value):
    return integer(value, 1, MAX_CONCURRENCY)


def upload_limit(value):
    """Bytes per second: a whole number, or a string of a number and k, M or G (KiB, MiB, GiB per
    second; the letter's case does not matter): 500k, 2M, 1.5M. Returns the bytes per second."""
    fix = "Use bytes per second as a number with k, M or G (KiB/MiB/GiB per second), e.g. 2M or 500k; a link of 16 Mbit/s carries at most 1.9M"
    match = UPLOAD_LIMIT.fullmatch(value.strip()) if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool):
        rate = value
    elif match:
        rate = int(float(match.group(1)) * UPLOAD_LIMIT_UNITS[match.group(2).lower()])
    else:
        raise FieldError(f"{value!r} is not a rate in bytes per second", fix)
    if rate < UPLOAD_LIMIT_MIN:
        raise FieldError(f"{value!r} is {rate} bytes per second, below the lowest limit of 64k ({UPLOAD_LIMIT_MIN})", fix)
    return rate


def progress_interval(value):
    return integer(value, 0, PROGRESS_INTERVAL_MAX)


def compression_level(compression, level):
    """The level for ``compression`` (its default when None); None without compression."""
    if compression not in COMPRESSION_LEVELS:
        return None
    default, lowest, highest = COMPRESSION_LEVELS[compression]
    return default if level is None else integer(level, lowest, highest)


def _bech32_checksum_ok(value):
    """BIP 173 checksum of a lowercase bech32 string (age uses it without the 90-character limit)."""
    hrp, data = value.rsplit("1", 1)
    checksum = 1
    for item in [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + [_BECH32.index(c) for c in data]:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ item
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
    return data[4: 4 + length] == kind.encode()


def age_recipient(value):
    recipient = one_line(value, "an age recipient")
    ssh = _SSH_RECIPIENT.fullmatch(recipient)
    if ssh and _ssh_key_type_ok(ssh.group(1), ssh.group(2)):
        return recipient
    if _AGE_RECIPIENT.fullmatch(recipient) and _bech32_checksum_ok(recipient):
        return recipient
    raise FieldError(
        f"{recipient!r} is not a valid age recipient (age1... with a good checksum) or ssh-ed25519/ssh-rsa public key",
        "Copy the public key that age-keygen printed (or age-keygen -y KEYFILE), or a line of ~/.ssh/id_ed25519.pub",
    )


def gpg_public_key(value):
    """An ASCII-armored OpenPGP public key (gpg --export --armor). A private key is refused: on the
    host it would let anyone who gets there decrypt every backup."""
    match = PGP_BLOCK.fullmatch(value) if isinstance(value, str) else None
    if match and match.group(1) == "PRIVATE":
        raise FieldError("holds a PGP PRIVATE key block", "Give the public key only: gpg --export --armor KEYID")
    if not match:
        raise FieldError(
            "is not an ASCII-armored PGP public key block (-----BEGIN PGP PUBLIC KEY BLOCK----- ... -----END ...)",
            "Export it with gpg --export --armor KEYID > backup-key.asc and pass the file's contents",
        )
    return value.strip() + "\n"


def passphrase(value):
    if not isinstance(value, str) or len(value) < PASSPHRASE_MIN_LENGTH or _CONTROL.search(value):
        raise FieldError(
            f"must be one line of at least {PASSPHRASE_MIN_LENGTH} characters (gpg reads only the first line)",
            "Generate one, e.g. with openssl rand -base64 32, and keep it in Ansible Vault",
        )
    return value


def encryption(value, method):
    """The runner's form: {"method": "age", "recipients": [...]}, {"method": "gpg", "public_keys": [...]}
    or {"method": "passphrase"} (the passphrase reaches the runner as a systemd credential, never in
    its config), or None. Errors never repeat a key."""
    if value is None:
        return None
    allowed = ENCRYPTIONS_BY_METHOD.get(method, ())
    kind = value.get("method") if isinstance(value, dict) else None
    fix = f"{method} jobs encrypt with {' or '.join(allowed) or 'nothing'}" if allowed else "Remove encryption"
    if kind not in allowed:
        raise FieldError(f"cannot be {kind!r} for {method} jobs", fix)
    if kind == "age" and set(value) == {"method", "recipients"}:
        if not isinstance(value["recipients"], list) or not value["recipients"]:
            raise FieldError("must list at least one age recipient", fix)
        return {"method": "age", "recipients": [age_recipient(item) for item in value["recipients"]]}
    if kind == "gpg" and set(value) == {"method", "public_keys"}:
        if not isinstance(value["public_keys"], list) or not value["public_keys"]:
            raise FieldError("must list at least one GPG public key", fix)
        return {"method": "gpg", "public_keys": [gpg_public_key(item) for item in value["public_keys"]]}
    if kind == "passphrase" and set(value) == {"method"}:
        return {"method": "passphrase"}
    raise FieldError(
        problem='must be {"method": "age", "recipients": [...]}, {"method": "gpg", "public_keys": [...]} or {"method": "passphrase"}',
        fix="The passphrase itself comes from a systemd credential, never from the config",
    )


def scripts(value):
    """duplicity jobs: [{"name": directory name, "script": bash script}, ...], names unique."""
    if not isinstance(value, list):
        raise FieldError(problem="must be a list", fix='List {"name": ..., "script": ...} entries')
    names = set()
    for entry in value:
        if not isinstance(entry, dict) or set(entry) != {"name", "script"}:
            raise FieldError(problem='must list {"name": ..., "script": ...} entries', fix="Give each script a name")
        if not isinstance(entry["name"], str) or not OBJECT_NAME.fullmatch(entry["name"]) or entry["name"] in names:
            raise FieldError(f"names {entry['name']!r}, which is not a unique safe directory name", "Name each script with letters, digits, '.', '_' and '-'")
        names.add(entry["name"])
        try:
            text(entry["script"])
        except FieldError:
            raise FieldError(
                "must be a non-empty shell script", "Write the commands that put this part of the backup into the current directory", at=entry["name"]
            ) from None
    return value


def retention(value):
    """{"keep_full": N} or {"older_than": "6M"}: which duplicity chains the prune module keeps."""
    if not isinstance(value, dict) or len(value) != 1 or not set(value) <= {"keep_full", "older_than"}:
        raise FieldError("must set exactly one of keep_full and older_than", "Use {keep_full: 3} (full chains to keep) or {older_than: 6M}")
    (name, item), = value.items()
    try:
        return {"keep_full": integer(item, 1, 1000)} if name == "keep_full" else {"older_than": duplicity_interval(item)}
    except FieldError as error:
        raise FieldError(error.problem, error.fix, at=name) from None


# ---------------------------------------------------------------------------------------------- job fields

ALL = METHODS
# Each field of a job as the operator writes it (jobs_list): which methods take it, and its
# documentation as roles/jobs/meta/argument_specs.yml shows it (a test keeps the two equal; regenerate
# that file with `python scripts/argument_specs.py`). "default" is the field's default for every
# method (METHOD_DEFAULTS overrides it per method); the check lives in the function of the same name
# above, or in the jobs role's filter (plugins/module_utils/jobs.py) for fields that never reach a host.
JOB_FIELDS = {
    "name": {
        "methods": ALL,
        "spec": {"type": "str", "required": True, "description": "Job name, 1-40 of V(a-z0-9_-); the units are C(s3-backup-<name>.service/.timer)."},
    },
    "method": {
        "methods": ALL,
        # No choices in the spec: the role's argument validation would name the value but not the job.
        "spec": {"type": "str", "required": True, "description": "How the job backs up, one of V(stream), V(archive), V(sync) or V(duplicity)."},
    },
    "description": {"methods": ALL, "spec": {"type": "str", "description": "One line shown in the unit's Description."}},
    "schedule": {
        "methods": ALL,
        "default": ["daily"],
        "spec": {
            "type": "raw",
            "description": [
                "C(OnCalendar) expression, or a list of them (see C(man systemd.time)). Default V(daily); for C(duplicity) jobs V(weekly), the schedule"
                " of their incremental backups."
            ],
        },
    },
    "randomized_delay": {
        "methods": ALL,
        "default": "1h",
        "spec": {"type": "str", "description": "Spread of the start time; the delay is random per host but stable (C(FixedRandomDelay))."},
    },
    "timeout": {
        "methods": ALL,
        "default": "6h",
        "spec": {"type": "str", "description": "C(TimeoutStartSec); a job still running then is stopped (and counts as failed)."},
    },
    "nice": {"methods": ALL, "default": 10, "spec": {"type": "int", "description": "CPU niceness of the job."}},
    "io_scheduling_class": {
        "methods": ALL,
        "default": "best-effort",
        "spec": {"type": "str", "choices": list(IO_CLASSES), "description": "I/O scheduling class."},
    },
    "io_scheduling_priority": {
        "methods": ALL,
        "default": 7,
        "spec": {"type": "int", "description": "I/O priority within the class, 0 (high) to 7 (low)."},
    },
    "stop_services": {
        "methods": ALL,
        "default": [],
        "spec": {
            "type": "list",
            "elements": "str",
            "description": "Units stopped before the backup (if active) and started again afterwards, whatever happens.",
        },
    },
    "pre_commands": {
        "methods": ALL,
        "default": [],
        "spec": {"type": "list", "elements": "str", "description": "Shell commands run before the backup, in order; a failing one fails the job."},
    },
    "command": {
        "methods": ("stream", "archive"),
        "spec": {
            "type": "str",
            "description": "C(stream) and C(archive): the backup command (run by C(bash -o pipefail -c)). For C(stream) its standard output is the backup;"
            " for C(archive) it writes files into O(jobs_list[].archive_dir).",
        },
    },
    "run_as": {
        "methods": ("stream", "archive", "duplicity"),
        "default": None,
        "spec": {
            "type": "str",
            "description": "C(stream) and C(archive) - the user that runs O(jobs_list[].command) and the pre-commands; C(duplicity) - the user that runs"
            " O(jobs_list[].scripts) (duplicity itself runs as root, to read what they wrote). It must exist on the host.",
        },
    },
    "compression": {
        "methods": ("stream",),
        "default": "zstd",
        "spec": {"type": "str", "choices": list(COMPRESSIONS), "description": "C(stream) - compression of the uploaded stream."},
    },
    "compression_level": {
        "methods": ("stream",),
        "default": None,
        "spec": {"type": "int", "description": "C(stream) - compression level (zstd 1-19, default 3; gzip 1-9, default 6)."},
    },
    "object_name": {
        "methods": ("stream",),
        "spec": {
            "type": "str",
            "description": "C(stream) - base name of the stored object (default the job name; 1-100 of V(A-Za-z0-9._-)), e.g. V(db.sql).",
        },
    },
    "encryption": {
        "methods": ("stream", "archive", "duplicity"),
        "default": None,
        "spec": {
            "type": "dict",
            "description": [
                "C(stream) and C(archive) - encrypt every stored object; set exactly one of O(jobs_list[].encryption.age_recipients)"
                " and O(jobs_list[].encryption.passphrase). Default none. Objects get C(.age) or C(.gpg) appended to their names; the manifest"
                " records the method (and the recipients, which are public keys) and the sha256 of the encrypted bytes.",
                "C(duplicity) - set exactly one of O(jobs_list[].encryption.gpg_public_keys) and O(jobs_list[].encryption.passphrase). Default none"
                " (C(--no-encryption)).",
            ],
            "options": {
                "gpg_public_keys": {
                    "type": "list",
                    "elements": "str",
                    "description": [
                        "C(duplicity) - ASCII-armored OpenPGP public keys (C(gpg --export --armor KEYID)) that duplicity encrypts to (C(--encrypt-key))."
                        " The host holds no secret key; incrementals work from the signature cache it keeps in"
                        " C(/var/lib/s3-backup/<name>/duplicity-cache), restores need the operator's secret key (C(restore_identity_file) of the"
                        " C(systemd_s3.backup.restore) role). A private key block is refused. Installs C(gpg)."
                    ],
                },
                "age_recipients": {
                    "type": "list",
                    "elements": "str",
                    "description": [
                        "Public keys to encrypt to with C(age) (C(age1...) as printed by C(age-keygen), or C(ssh-ed25519 ...) / C(ssh-rsa ...) lines);"
                        " any one of their private keys decrypts. The private keys stay with the operators, off the hosts, so someone who takes a"
                        " host cannot read its backups. Installs C(age)."
                    ],
                },
                "passphrase": {
                    "type": "str",
                    "no_log": True,
                    "description": [
                        "A secret (one line, at least 20 characters; keep it in Ansible Vault) that C(gpg) encrypts with (AES256; for C(duplicity)"
                        " jobs, duplicity's symmetric GPG encryption). It is stored on the host, root only, in"
                        " C(/etc/systemd-s3-backup/<name>.passphrase) and reaches the runner as a systemd credential, so whoever takes the host (and"
                        " its AWS key) can also decrypt. Needs systemd 247 or later. Installs C(gpg)."
                    ],
                },
            },
        },
    },
    "archive_dir": {
        "methods": ("archive",),
        "spec": {
            "type": "path",
            "description": "C(archive) - absolute directory the command writes into; emptied after every run, so not a system directory. The role"
            " creates it (owned by O(jobs_list[].run_as), mode 0700) and never changes a directory that exists already.",
        },
    },
    "sync_dir": {
        "methods": ("sync",),
        "spec": {"type": "path", "description": "C(sync) - absolute directory mirrored to C(<prefix>/<name>/data/)."},
    },
    "excludes": {
        "methods": ("sync", "duplicity"),
        "default": [],
        "spec": {
            "type": "list",
            "elements": "str",
            "description": [
                "C(sync) - C(aws s3 sync --exclude) patterns, relative to O(jobs_list[].sync_dir).",
                "C(duplicity) - C(duplicity --exclude) patterns, matched against full paths (V(/srv/data/cache), V(**/*.tmp)).",
            ],
        },
    },
    "source_dir": {
        "methods": ("duplicity",),
        "spec": {
            "type": "path",
            "description": [
                "C(duplicity) - the absolute directory to back up (set this or O(jobs_list[].scripts)). Services in O(jobs_list[].stop_services) stay"
                " stopped while duplicity reads it."
            ],
        },
    },
    "scripts": {
        "methods": ("duplicity",),
        "spec": {
            "type": "dict",
            "description": [
                "C(duplicity) - name to bash script (C(bash -e -o pipefail)); each runs in its own directory C(<name>/) of a temporary directory,"
                " as O(jobs_list[].run_as), and writes there what is to be backed up. duplicity then backs up that temporary directory, which is"
                " removed afterwards whatever happened. Services in O(jobs_list[].stop_services) start again once the scripts are done. Set this"
                " or O(jobs_list[].source_dir)."
            ],
        },
    },
    "full_schedule": {
        "methods": ("duplicity",),
        "spec": {
            "type": "raw",
            "description": [
                "C(duplicity) - C(OnCalendar) expression(s) of the full backups, default V(monthly). They run as a unit of their own,"
                " C(s3-backup-<name>-full.service) and C(.timer); full and incremental runs of one job never overlap (the later one waits for the"
                " job's lock). Not with O(jobs_list[].full_if_older_than)."
            ],
        },
    },
    "full_if_older_than": {
        "methods": ("duplicity",),
        "spec": {
            "type": "str",
            "description": [
                "C(duplicity) - instead of O(jobs_list[].full_schedule), one unit whose run is a full backup when the last full one is older than"
                " this duplicity interval (V(1M), V(30D)), else an incremental."
            ],
        },
    },
    "retention": {
        "methods": ("duplicity",),
        # Never reaches a host: the prune module (plugins/module_utils/retention.py) cuts duplicity's chains
        # from the control node, so the host needs no delete permission; jobs.py checks it at deploy time.
        "spec": {
            "type": "dict",
            "description": [
                "C(duplicity) - which chains (a full backup and its incrementals) the C(systemd_s3.backup.prune) playbook (module"
                " C(systemd_s3.backup.prune)) keeps; it deletes the others whole from the control node, as duplicity's"
                " C(remove-all-but-n-full) and C(remove-older-than) would, so the host needs no delete permission. Default: none, every chain"
                " is kept. The newest complete chain, every chain touched within O(jobs_list[].max_age) and every chain holding a suspicious set"
                " always stay; the versioned bucket keeps what is deleted as noncurrent versions until its lifecycle expires them.",
            ],
            "options": {
                "keep_full": {"type": "int", "description": "Keep this many full chains, the newest (C(remove-all-but-n-full))."},
                "older_than": {
                    "type": "str",
                    "description": "Delete the chains whose newest set is older than this duplicity interval, e.g. V(6M) (C(remove-older-than)).",
                },
            },
        },
    },
    "keep": {
        "methods": ("stream", "archive"),
        # Never reaches a host: the prune module (plugins/module_utils/retention.py) applies it from the
        # control node, with credentials no host holds; jobs.py checks it when the role deploys the job.
        "spec": {
            "type": "dict",
            "description": [
                "C(stream) and C(archive) - which complete runs the C(systemd_s3.backup.prune) playbook (module C(systemd_s3.backup.prune)) keeps;"
                " it deletes the other run folders from the control node, so the host needs no delete permission. Default: none, every run is kept."
                " A run kept by any rule stays (restic's C(forget)); the newest complete run and every run younger than"
                " O(jobs_list[].max_age) always stay. Not for C(sync) (its history is the bucket's noncurrent versions) nor C(duplicity)"
                " (use O(jobs_list[].retention)).",
                "Example: V({last: 7, daily: 14, weekly: 8, monthly: 12, yearly: 3}), or V({within: 90d}) to delete what is older than 90 days.",
                "In the versioned bucket a deleted object becomes a noncurrent version: the space is freed when the bucket's"
                " C(noncurrent_version_expiration_days) expires it, and until then the run can be recovered.",
            ],
            "options": {
                "last": {"type": "int", "description": "Keep the N newest runs."},
                "hourly": {"type": "int", "description": "Keep the newest run of each of the N newest hours (UTC) that have one."},
                "daily": {"type": "int", "description": "Keep the newest run of each of the N newest days (UTC) that have one."},
                "weekly": {"type": "int", "description": "Keep the newest run of each of the N newest ISO weeks that have one."},
                "monthly": {"type": "int", "description": "Keep the newest run of each of the N newest months that have one."},
                "yearly": {"type": "int", "description": "Keep the newest run of each of the N newest years that have one."},
                "within": {
                    "type": "str",
                    "description": "Keep every run started at most this long before the newest run (V(90d), V(12w); units s, min, h, d, w), so"
                    " older runs go: counted from the newest run, not from now, so a job that stopped keeps its runs.",
                },
            },
        },
    },
    "read_write_paths": {
        "methods": ALL,
        "default": [],
        "spec": {
            "type": "list",
            "elements": "path",
            "description": "Extra absolute paths the hardened unit may write to (the file system is otherwise read-only).",
        },
    },
    "part_size_mb": {
        "methods": ALL,
        "default": 16,
        "spec": {
            "type": "int",
            "description": "Size of each uploaded part (5-5120 MiB); memory use is about this times O(jobs_list[].max_concurrency).",
        },
    },
    "max_concurrency": {"methods": ALL, "default": 4, "spec": {"type": "int", "description": "Parts uploaded in parallel (1-32)."}},
    "upload_limit": {
        "methods": ALL,
        "default": None,
        "spec": {
            "type": "raw",
            "description": [
                "Most bytes per second the job uploads, so that a nightly backup leaves room on a small office link: a number (bytes per"
                " second) or one with V(k), V(M) or V(G) (KiB, MiB, GiB per second), e.g. V(2M) or V(500k); at least V(64k). A link of"
                " 16 Mbit/s carries at most V(1.9M). Default none: as fast as the link allows.",
                "C(stream) and C(archive) - the runner's own uploader, one token bucket for all parts in flight (bursts of a quarter second's"
                " worth), and boto3's bandwidth limit for an C(archive) job's unencrypted files. C(sync) - the aws command's C(s3.max_bandwidth)"
                " (rounded down to whole KiB per second). C(duplicity) - boto3's bandwidth limit on every file duplicity uploads.",
                "The limit is per job: jobs that run at the same time add up, and restores are not limited. A C(stream) job's services stay"
                " stopped for the whole upload, so its downtime grows to at least the stream's size divided by the limit; the job's"
                " O(jobs_list[].timeout) must leave time for the whole upload too.",
            ],
        },
    },
    "progress_interval": {
        "methods": ALL,
        "default": 30,
        "spec": {
            "type": "int",
            "description": [
                "Seconds between the journal's progress lines of an upload (bytes so far, percentage where known, rate, parts), 0-86400;"
                " V(0) logs one line per part (C(sync) and C(duplicity): per file). Whatever it is, every upload ends with one summary line"
                " (bytes, parts, duration, average rate), not one line per part. C(sync) jobs keep the aws command's line per file.",
            ],
        },
    },
    "enabled": {
        "methods": ALL,
        "default": True,
        "spec": {"type": "bool", "description": "Whether the timer is enabled; a disabled job can still be started by hand."},
    },
    "max_age": {
        "methods": ALL,
        "spec": {
            "type": "str",
            "description": [
                "How old the job's newest complete backup may be before the C(systemd_s3.backup.freshness) playbook fails for it, e.g. V(26h) for a"
                " daily job (default there 2 days). The C(systemd_s3.backup.prune) playbook never deletes a run younger than this. With"
                " O(jobs_list[].metrics_dir) it is also the metric C(systemd_s3_backup_max_age_seconds)."
            ],
        },
    },
    "ping_url": {
        "methods": ALL,
        "spec": {
            "type": "str",
            "no_log": True,
            "description": [
                "A dead man's switch: a healthchecks.io-style ping URL (V(https://hc-ping.com/<uuid>), or a self-hosted Healthchecks or any"
                " service with the same API). The runner sends C(<url>/start) when a run begins and C(<url>) when it succeeds; the alert unit"
                " (C(OnFailure=)) sends C(<url>/fail) with the alert text and the run's last journal lines, so a killed or crashed run pings"
                " too, and a host that is down or a timer that never fires is noticed by the service when the success ping does not come."
                " Each ping is tried 3 times (10 s timeout each); a ping that fails is a warning in the journal and never fails the backup.",
                "The URL's path is the check's secret: keep it in Ansible Vault. It is stored on the host, root only, in"
                " C(/etc/systemd-s3-backup/<name>.ping-url), never in the runner's config, a unit or the journal (which show its host only).",
            ],
        },
    },
    "metrics_dir": {
        "methods": ALL,
        "spec": {
            "type": "path",
            "description": [
                "The textfile collector directory of node_exporter (C(--collector.textfile.directory); the Debian package"
                " C(prometheus-node-exporter) reads V(/var/lib/prometheus/node-exporter)). After every run, successful or not, the runner"
                " replaces C(<metrics_dir>/systemd_s3_backup_<name>.prom) (mode 0644) with the metrics of the job: time of the last success,"
                " start, duration and exit status of the last run, what the last successful run stored, and O(jobs_list[].max_age)."
                " The directory must exist on the host; the unit may write to it. Default off. README has example Prometheus alerting rules.",
            ],
        },
    },
}
# duplicity jobs: incrementals weekly and fulls monthly, unless the job says otherwise.
METHOD_DEFAULTS = {"duplicity": {"schedule": ["weekly"], "full_schedule": ["monthly"]}}


def fields_of(method):
    """The job fields a method takes."""
    return {name for name, field in JOB_FIELDS.items() if method in field["methods"]}


def job_defaults(method):
    defaults = {name: copy.deepcopy(field["default"]) for name, field in JOB_FIELDS.items() if "default" in field and method in field["methods"]}
    defaults.update(copy.deepcopy(METHOD_DEFAULTS.get(method, {})))
    return defaults


def argument_spec_options():
    """jobs_list's options in roles/jobs/meta/argument_specs.yml. A default is shown where it is the
    same for every method that takes the field (schedule's differs per method: its doc says so)."""
    overridden = {name for defaults in METHOD_DEFAULTS.values() for name in defaults}
    options = {}
    for name, field in JOB_FIELDS.items():
        spec = copy.deepcopy(field["spec"])
        if field.get("default") is not None and name not in overridden:
            spec["default"] = copy.deepcopy(field["default"])
        options[name] = spec
    return options


# ---------------------------------------------------------------------------------------------- the runner's config

REQUIRED = object()
# field: (default, check). A null value means "not set". Set by the jobs role from a checked job and
# the aws role's hand-over (bucket, prefix, ...); the runner checks it again with these same functions.
RUNNER_FIELDS = {
    "job": (REQUIRED, job_name),
    "host": (REQUIRED, lambda value: one_line(value, "the host's name")),
    "unit": (REQUIRED, service_unit),
    "method": (REQUIRED, lambda value: choice(value, METHODS)),
    "bucket": (REQUIRED, bucket_name),
    "prefix": (REQUIRED, prefix),
    "region": (REQUIRED, region),
    "endpoint_url": (None, endpoint_url),
    "credentials_file": (None, absolute_path),
    "alert_topic_arn": (None, topic_arn),
    "stop_services": ([], lambda value: list_of(value, unit_name)),
    "pre_commands": ([], lambda value: list_of(value, lambda item: one_line(item, "a shell command"))),
    "command": (None, lambda value: one_line(value, "the backup command")),
    "run_as": (None, user_name),
    "compression": ("zstd", lambda value: choice(value, COMPRESSIONS)),
    "compression_level": (None, lambda value: integer(value, 1, 19)),
    "encryption": (None, None),  # checked with the method: encryption(value, method)
    "object_name": (None, object_name),
    "archive_dir": (None, dedicated_directory),
    "sync_dir": (None, absolute_path),
    "excludes": ([], lambda value: list_of(value, lambda item: one_line(item, "an exclude pattern"))),
    "source_dir": (None, absolute_path),
    "scripts": ([], scripts),
    "duplicity_action": (None, lambda value: choice(value, DUPLICITY_ACTIONS)),
    "full_if_older_than": (None, duplicity_interval),
    "part_size_mb": (16, part_size_mb),
    "max_concurrency": (4, max_concurrency),
    "upload_limit": (None, upload_limit),
    "progress_interval": (30, progress_interval),
    # Set only when the job has them, so that other jobs' configs stay as they were.
    "ping_url_file": (None, absolute_path),
    "metrics_dir": (None, absolute_path),
    "max_age_seconds": (None, max_age_seconds),
}
# Fields an older jobs role wrote that this runner ignores: duplicity's retention runs on the control node now.
RETIRED_RUNNER_FIELDS = ("retention",)
# What each method cannot run without.
RUNNER_METHOD_FIELDS = {"stream": ("command", "object_name"), "archive": ("command", "archive_dir"), "sync": ("sync_dir",), "duplicity": ("duplicity_action",)}
# alert, start-services and restore read only what they need, so that they still work when the rest of
# the config is what made run fail (or no longer fits the backup being restored).
ALERT_FIELDS = ("job", "host", "unit", "region", "endpoint_url", "credentials_file", "alert_topic_arn", "ping_url_file")
START_SERVICES_FIELDS = ("job",)
RESTORE_FIELDS = ("job", "host", "bucket", "prefix", "region", "endpoint_url")


class ConfigFieldError(FieldError):
    def __init__(self, field, error):
        super().__init__(error.problem, error.fix)
        self.field = f"{field}.{error.at}" if error.at else field

    def __str__(self):
        return f"config field '{self.field}' {self.problem}" + (f". {self.fix}" if self.fix else "")


def runner_config(raw, fields=None):
    """The runner's config with defaults filled in, every field checked; ``fields`` limits reading
    and checking to those (alert, start-services, restore). Raises ConfigFieldError."""
    if not isinstance(raw, dict):
        raise ConfigFieldError("(config)", FieldError("must be a JSON object"))
    # A config the 0.1.x jobs role wrote may still hold a retired field until the role rewrites it.
    raw = {name: value for name, value in raw.items() if name not in RETIRED_RUNNER_FIELDS}
    unknown = sorted(set(raw) - set(RUNNER_FIELDS))
    if fields is None and unknown:
        raise ConfigFieldError(unknown[0], FieldError("is not a setting of this runner (misspelt?)", "Remove it, or upgrade the runner"))
    config = {}
    for name in fields or RUNNER_FIELDS:
        default, check = RUNNER_FIELDS[name]
        value = raw.get(name)
        if value is None:
            if default is REQUIRED:
                raise ConfigFieldError(name, FieldError("is missing", "Deploy the job with the systemd_s3.backup.jobs role"))
            config[name] = copy.deepcopy(default)
            continue
        try:
            config[name] = encryption(value, raw.get("method")) if name == "encryption" else check(value)
        except FieldError as error:
            raise ConfigFieldError(name, error) from None
    if fields is None:
        method = config["method"]
        for name in RUNNER_METHOD_FIELDS[method]:
            if config[name] is None:
                raise ConfigFieldError(name, FieldError(f"is missing (method {method} needs it)"))
        if method == "duplicity" and (config["source_dir"] is None) == (not config["scripts"]):
            raise ConfigFieldError("source_dir", FieldError("or scripts: a duplicity job backs up exactly one of them"))
        try:
            config["compression_level"] = compression_level(config["compression"], config["compression_level"])
        except FieldError as error:
            raise ConfigFieldError("compression_level", error) from None
    return config


def runner_config_json(config):
    """The config file as the jobs role writes it and the runner reads it."""
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)
