# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup bucket's wanted configuration, built from the ``bucket`` module's options.

Pure functions only (no AWS calls): validation, the desired settings, the lifecycle rule the
module owns and its merge into the bucket's other rules, and current-vs-wanted comparison.

Settings are compared and reported in one "view" form (snake_case dicts, as in the module's
diff and return values); ``*_api`` functions turn a view into what S3's Put calls take."""

from __future__ import annotations

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict

from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError
from ansible_collections.systemd_s3.backup.plugins.module_utils.contract import COLD_STORAGE_CLASSES
from ansible_collections.systemd_s3.backup.plugins.module_utils.contract import DATA_TAG_KEY
from ansible_collections.systemd_s3.backup.plugins.module_utils.contract import DATA_TAG_VALUE
from ansible_collections.systemd_s3.backup.plugins.module_utils.policies import validate_bucket_name

try:
    from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
    from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
    from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags
except ImportError:  # pragma: no cover - amazon.aws is a declared dependency
    ansible_dict_to_boto3_tag_list = boto3_tag_list_to_ansible_dict = compare_aws_tags = None

# Lifecycle storage classes from warmer to colder: S3 only moves objects down this list.
STORAGE_CLASSES = ("STANDARD_IA", "INTELLIGENT_TIERING", "ONEZONE_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE")
# S3 refuses transitions into these before day 30, and out of them within 30 days (their minimum storage).
INFREQUENT_ACCESS_CLASSES = ("STANDARD_IA", "ONEZONE_IA")
INFREQUENT_ACCESS_MINIMUM_DAYS = 30

# Transitions to the cold classes (contract.COLD_STORAGE_CLASSES) go into a second rule that only
# moves data objects (the runner tags them), so manifests and duplicity's metadata stay readable at once.
COLD_RULE_SUFFIX = "-cold"

DEFAULT_TRANSITIONS = [{"days": 32, "storage_class": "STANDARD_IA"}, {"days": 64, "storage_class": "GLACIER"}]
DEFAULT_RULE_ID = "systemd-s3-backup"
RULE_ID_MAX = 255 - len(COLD_RULE_SUFFIX)

# Settings the module manages, in the order it writes them (object lock needs versioning first).
# Both lifecycle rules are written in one PutBucketLifecycleConfiguration, first: a store may read
# lifecycle rules yet refuse the transitions in them only when they are written (SeaweedFS), while the
# reads of an existing bucket show any other setting a store lacks before anything is written.
SETTINGS = ("lifecycle_rule", "lifecycle_cold_rule", "public_access_block", "versioning", "encryption", "tags", "object_lock")
LIFECYCLE_SETTINGS = ("lifecycle_rule", "lifecycle_cold_rule")

PUBLIC_ACCESS_BLOCK_KEYS = {
    "BlockPublicAcls": "block_public_acls",
    "IgnorePublicAcls": "ignore_public_acls",
    "BlockPublicPolicy": "block_public_policy",
    "RestrictPublicBuckets": "restrict_public_buckets",
}

# Error codes meaning "this setting was never configured on the bucket".
NOT_SET_CODES = {
    "public_access_block": ("NoSuchPublicAccessBlockConfiguration",),
    "encryption": ("ServerSideEncryptionConfigurationNotFoundError",),
    "lifecycle_rule": ("NoSuchLifecycleConfiguration",),
    "tags": ("NoSuchTagSet", "NoSuchTagSetError"),
    "object_lock": ("ObjectLockConfigurationNotFoundError",),
}

# What an S3-compatible store lacking a feature should be told: the option it comes from, the
# feature, how to switch it off. The lifecycle rules come from several options: lifecycle_fix().
UNSUPPORTED = {
    "public_access_block": ("block_public_access", "public access blocks", "set block_public_access: false"),
    "versioning": ("versioning", "versioning", "set versioning: false"),
    "encryption": ("encryption", "default bucket encryption", "set encryption: none"),
    "tags": ("tags", "bucket tagging", "omit tags"),
    "object_lock": ("object_lock", "object lock", "omit object_lock"),
}

# The cold rule lives in the same lifecycle configuration as the main one.
NOT_SET_CODES["lifecycle_cold_rule"] = NOT_SET_CODES["lifecycle_rule"]

MAX_TAGS = 50
MAX_RETENTION = {"days": 36500, "years": 100}


def lifecycle_fix(params):
    """The options that make the module's lifecycle rules, as they are set: [(option, how to switch it off)]."""
    fixes = []
    if params.get("transitions"):
        fixes.append(("transitions", "set transitions: []"))
    if params.get("abort_incomplete_multipart_upload_days"):
        fixes.append(("abort_incomplete_multipart_upload_days", "set abort_incomplete_multipart_upload_days: 0"))
    if params.get("noncurrent_version_expiration_days") is not None:
        fixes.append(("noncurrent_version_expiration_days", "omit noncurrent_version_expiration_days"))
    return fixes or [("transitions", "set transitions: []")]


def unsupported_message(setting, params=None, code=None, written=False):
    """The refusal of a setting the endpoint does not implement: the option first, then how to proceed.
    ``written``: the store refused writing it (having read it): for the lifecycle rules, stores
    without storage classes (SeaweedFS) read and write rules but refuse transitions in them."""
    answered = f" (it answered {code})" if code else ""
    if setting not in LIFECYCLE_SETTINGS:
        option, feature, fix = UNSUPPORTED[setting]
        return f"{option}: this endpoint does not support {feature}{answered}; {fix}"
    fixes = lifecycle_fix(params or {})
    if written and fixes[0][0] == "transitions" and len(fixes) > 1:
        others = " and ".join(fix for _option, fix in fixes[1:])
        return (
            f"transitions: this endpoint does not support lifecycle transitions{answered}: it has no other storage classes. "
            f"Set transitions: []; if it still refuses the lifecycle configuration, also {others}"
        )
    return f"{fixes[0][0]}: this endpoint does not support lifecycle configuration{answered}; {' and '.join(fix for _option, fix in fixes)}"


# ---------------------------------------------------------------- validation


def _is_whole_number(value):
    return isinstance(value, int) and not isinstance(value, bool)


def validate_transitions(transitions, field="transitions"):
    """Transitions as S3 accepts them: days increasing, classes getting colder, the
    infrequent-access 30-day rules kept. Returns them as a list of {days, storage_class}."""
    order_fix = f"Order transitions from warmer to colder: {', '.join(STORAGE_CLASSES)}"
    checked = []
    for index, transition in enumerate(transitions or []):
        here = f"{field}[{index}]"
        if not isinstance(transition, dict):
            raise InputError(here, f"{transition!r} is not a dict", "Use {days: 32, storage_class: STANDARD_IA}")
        days, storage_class = transition.get("days"), transition.get("storage_class")
        if not _is_whole_number(days) or days < 1:
            raise InputError(f"{here}.days", f"{days!r} is not a positive whole number", "Use days after object creation, e.g. 32")
        if storage_class not in STORAGE_CLASSES:
            raise InputError(f"{here}.storage_class", f"unknown storage class {storage_class!r}", f"Use one of {', '.join(STORAGE_CLASSES)}")
        if storage_class in INFREQUENT_ACCESS_CLASSES and days < INFREQUENT_ACCESS_MINIMUM_DAYS:
            raise InputError(
                f"{here}.days",
                f"{days} is under {INFREQUENT_ACCESS_MINIMUM_DAYS}: S3 refuses transitions to {storage_class} before day 30",
                f"Use {INFREQUENT_ACCESS_MINIMUM_DAYS} or more days, e.g. 32",
            )
        if checked:
            previous, before = checked[-1], f"{field}[{index - 1}]"
            if days <= previous["days"]:
                raise InputError(
                    f"{here}.days",
                    f"{days} is not after {before}.days {previous['days']}",
                    "List transitions in order of increasing days",
                )
            if storage_class in [t["storage_class"] for t in checked]:
                raise InputError(f"{here}.storage_class", f"{storage_class} appears twice", "Use each storage class once")
            if STORAGE_CLASSES.index(storage_class) < STORAGE_CLASSES.index(previous["storage_class"]):
                raise InputError(
                    f"{here}.storage_class",
                    f"{storage_class} is not colder than {before}.storage_class {previous['storage_class']}",
                    order_fix,
                )
            if previous["storage_class"] in INFREQUENT_ACCESS_CLASSES and days - previous["days"] < INFREQUENT_ACCESS_MINIMUM_DAYS:
                raise InputError(
                    f"{here}.days",
                    f"{days} is less than {INFREQUENT_ACCESS_MINIMUM_DAYS} days after {before}.days {previous['days']}: "
                    f"S3 keeps objects in {previous['storage_class']} at least {INFREQUENT_ACCESS_MINIMUM_DAYS} days",
                    f"Use {previous['days'] + INFREQUENT_ACCESS_MINIMUM_DAYS} or more days",
                )
        checked.append({"days": days, "storage_class": storage_class})
    return checked


def validate_object_lock(object_lock, versioning, field="object_lock"):
    """Default retention: a mode and exactly one of days or years."""
    if object_lock is None:
        return None
    if not versioning:
        raise InputError(field, "needs versioning, but versioning is false", "Set versioning: true or omit object_lock")
    mode = object_lock.get("mode")
    if mode not in ("GOVERNANCE", "COMPLIANCE"):
        raise InputError(f"{field}.mode", f"{mode!r} is not an object lock mode", "Use GOVERNANCE or COMPLIANCE")
    periods = {unit: object_lock.get(unit) for unit in ("days", "years") if object_lock.get(unit) is not None}
    if len(periods) != 1:
        raise InputError(field, "needs exactly one of days or years", "Set e.g. days: 30 or years: 1, not both")
    ((unit, amount),) = periods.items()
    if not _is_whole_number(amount) or not 0 < amount <= MAX_RETENTION[unit]:
        raise InputError(f"{field}.{unit}", f"{amount!r} is not between 1 and {MAX_RETENTION[unit]}", f"Use a positive whole number of {unit}")
    return {"mode": mode, unit: amount}


def validate_tags(tags, field="tags"):
    """Tags as S3 stores them: string keys and values within S3's limits."""
    if tags is None:
        return None
    if len(tags) > MAX_TAGS:
        raise InputError(field, f"has {len(tags)} tags, more than S3's {MAX_TAGS}", "Remove some tags")
    checked = {}
    for key, value in tags.items():
        key, value = str(key), "" if value is None else str(value)
        if not 1 <= len(key) <= 128 or key.startswith("aws:"):
            raise InputError(f"{field}.{key}", "is not a usable tag key", "Use 1-128 characters not starting with 'aws:'")
        if len(value) > 256:
            raise InputError(f"{field}.{key}", "has a value longer than 256 characters", "Shorten the value")
        checked[key] = value
    return checked


def validate(params):
    """Every check on the module's options that needs no AWS call; raises InputError."""
    validate_bucket_name(params["name"], field="name")
    if params.get("state", "present") == "absent":
        return
    rule_id = params.get("lifecycle_rule_id")
    if not isinstance(rule_id, str) or not 1 <= len(rule_id) <= RULE_ID_MAX:
        raise InputError(
            "lifecycle_rule_id",
            f"{rule_id!r} is not a usable rule ID",
            f"Use 1-{RULE_ID_MAX} characters (the module also owns the rule <id>{COLD_RULE_SUFFIX}), e.g. systemd-s3-backup",
        )
    if len(params.get("lifecycle_prefix") or "") > 1024:
        raise InputError("lifecycle_prefix", "is longer than 1024 characters", "Use a shorter key prefix")
    validate_transitions(params.get("transitions"))
    abort_days = params.get("abort_incomplete_multipart_upload_days")
    if not _is_whole_number(abort_days) or abort_days < 0:
        raise InputError("abort_incomplete_multipart_upload_days", f"{abort_days!r} is not 0 or more", "Use e.g. 7, or 0 to keep incomplete uploads")
    noncurrent_days = params.get("noncurrent_version_expiration_days")
    if noncurrent_days is not None and (not _is_whole_number(noncurrent_days) or noncurrent_days < 1):
        raise InputError("noncurrent_version_expiration_days", f"{noncurrent_days!r} is not 1 or more", "Use e.g. 90, or omit it to keep old versions")
    if params.get("kms_key_id") and params.get("encryption") != "aws:kms":
        raise InputError("kms_key_id", f"is only used with encryption: aws:kms, not {params.get('encryption')}", "Set encryption: aws:kms or drop kms_key_id")
    validate_object_lock(params.get("object_lock"), params.get("versioning"))
    validate_tags(params.get("tags"))


# ---------------------------------------------------------------- wanted settings


def _transitions_api(transitions):
    return [{"Days": t["days"], "StorageClass": t["storage_class"]} for t in transitions]


def cold_rule_id(rule_id):
    return f"{rule_id}{COLD_RULE_SUFFIX}"


def lifecycle_rule(params):
    """The module's main lifecycle rule, over the whole lifecycle prefix, in S3's form; None when it
    would do nothing. It holds the transitions to classes GetObject reads at once."""
    rule = {}
    transitions = [t for t in validate_transitions(params.get("transitions")) if t["storage_class"] not in COLD_STORAGE_CLASSES]
    if transitions:
        rule["Transitions"] = _transitions_api(transitions)
    if params.get("abort_incomplete_multipart_upload_days"):
        rule["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": params["abort_incomplete_multipart_upload_days"]}
    if params.get("noncurrent_version_expiration_days"):
        rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": params["noncurrent_version_expiration_days"]}
    if not rule:
        return None
    return dict(rule, ID=params["lifecycle_rule_id"], Filter={"Prefix": params.get("lifecycle_prefix") or ""}, Status="Enabled")


def cold_lifecycle_rule(params):
    """The module's second rule: transitions to GLACIER / DEEP_ARCHIVE, for data objects only (those
    carrying the data tag, under the lifecycle prefix); None when there are none."""
    transitions = [t for t in validate_transitions(params.get("transitions")) if t["storage_class"] in COLD_STORAGE_CLASSES]
    if not transitions:
        return None
    tag = {"Key": DATA_TAG_KEY, "Value": DATA_TAG_VALUE}
    prefix = params.get("lifecycle_prefix") or ""
    rule_filter = {"And": {"Prefix": prefix, "Tags": [tag]}} if prefix else {"Tag": tag}
    return {"ID": cold_rule_id(params["lifecycle_rule_id"]), "Filter": rule_filter, "Status": "Enabled", "Transitions": _transitions_api(transitions)}


def lifecycle_rules(params):
    """Every rule the module owns, by ID: the wanted rule, or None for one that must not exist."""
    return {params["lifecycle_rule_id"]: lifecycle_rule(params), cold_rule_id(params["lifecycle_rule_id"]): cold_lifecycle_rule(params)}


def wanted_settings(params):
    """The managed settings as views. ``tags`` is the option as given: see ``merged_tags``."""
    wanted = {}
    if params.get("block_public_access"):
        wanted["public_access_block"] = public_access_block_view(public_access_block_api())
    if params.get("versioning"):
        wanted["versioning"] = "Enabled"
    if params.get("encryption") == "AES256":
        wanted["encryption"] = {"sse_algorithm": "AES256"}
    elif params.get("encryption") == "aws:kms":
        wanted["encryption"] = {
            "sse_algorithm": "aws:kms",
            "kms_key_id": params.get("kms_key_id") or None,
            "bucket_key_enabled": bool(params.get("bucket_key_enabled")),
        }
    wanted["lifecycle_rule"] = lifecycle_rule_view(lifecycle_rule(params))
    wanted["lifecycle_cold_rule"] = lifecycle_rule_view(cold_lifecycle_rule(params))
    if params.get("tags") is not None:
        wanted["tags"] = validate_tags(params["tags"])
    object_lock = validate_object_lock(params.get("object_lock"), params.get("versioning"))
    if object_lock:
        wanted["object_lock"] = dict(object_lock, enabled=True)
    return wanted


def new_bucket_state(object_lock=False):
    """What a just-created bucket is taken to have, so creating one writes only what differs.
    (AWS now blocks public access and encrypts by default; writing those again is harmless.)"""
    state = {
        "public_access_block": public_access_block_view(None),
        "versioning": "Disabled",
        "encryption": encryption_view(None),
        "lifecycle_rule": None,
        "lifecycle_cold_rule": None,
        "tags": {},
        "object_lock": object_lock_view(None),
    }
    if object_lock:
        state["object_lock"] = object_lock_view({"ObjectLockEnabled": "Enabled"})
    return state


def merged_tags(current, wanted, purge):
    """The tag set to end up with: ``wanted``, plus the other current tags unless purging."""
    to_set, to_unset = compare_aws_tags(current or {}, wanted, purge_tags=purge)
    result = {key: value for key, value in (current or {}).items() if key not in to_unset}
    result.update(to_set)
    return result


def bucket_arn(name, region=None):
    partition = "aws"
    if (region or "").startswith("cn-"):
        partition = "aws-cn"
    elif (region or "").startswith("us-gov-"):
        partition = "aws-us-gov"
    return f"arn:{partition}:s3:::{name}"


def create_bucket_params(name, region, object_lock):
    """CreateBucket's arguments: outside us-east-1 S3 needs the region as LocationConstraint."""
    params = {"Bucket": name}
    if region and region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": region}
    if object_lock:
        params["ObjectLockEnabledForBucket"] = True
    return params


# ---------------------------------------------------------------- current settings, as views


def public_access_block_view(configuration):
    """Get/PutPublicAccessBlock's configuration as a view; not set ({} or None) means all off."""
    return {name: bool((configuration or {}).get(key)) for key, name in PUBLIC_ACCESS_BLOCK_KEYS.items()}


def versioning_view(response):
    """GetBucketVersioning's answer: Enabled, Suspended, or Disabled when never turned on."""
    return (response or {}).get("Status") or "Disabled"


def encryption_view(configuration):
    """The default encryption of GetBucketEncryption's configuration; {} when not set."""
    rules = (configuration or {}).get("Rules") or []
    if not rules:
        return {}
    default = rules[0].get("ApplyServerSideEncryptionByDefault") or {}
    algorithm = default.get("SSEAlgorithm")
    if algorithm == "AES256":
        return {"sse_algorithm": "AES256"}
    return {
        "sse_algorithm": algorithm,
        "kms_key_id": default.get("KMSMasterKeyID") or None,
        "bucket_key_enabled": bool(rules[0].get("BucketKeyEnabled")),
    }


def normalize_rule(rule):
    """A lifecycle rule in one canonical form: the legacy top-level Prefix and an empty
    Filter both become Filter {Prefix}, transitions are sorted by days."""
    if rule is None:
        return None
    normalized = {key: value for key, value in rule.items() if key != "Prefix"}
    if not rule.get("Filter"):
        normalized["Filter"] = {"Prefix": rule.get("Prefix") or ""}
    if normalized.get("Transitions"):
        normalized["Transitions"] = sorted(normalized["Transitions"], key=lambda t: (t.get("Days") or 0, t.get("Date") or ""))
    else:
        normalized.pop("Transitions", None)
    return normalized


def lifecycle_rule_view(rule):
    """A lifecycle rule (S3's form) as a view; None stays None (no rule)."""
    return None if rule is None else camel_dict_to_snake_dict(normalize_rule(rule))


def find_rule(rules, rule_id):
    return next((rule for rule in rules or [] if rule.get("ID") == rule_id), None)


def tags_view(tag_set):
    return boto3_tag_list_to_ansible_dict(tag_set or [])


def object_lock_view(configuration):
    """GetObjectLockConfiguration's configuration as a view; zero periods are dropped."""
    configuration = configuration or {}
    view = {"enabled": configuration.get("ObjectLockEnabled") == "Enabled"}
    retention = (configuration.get("Rule") or {}).get("DefaultRetention") or {}
    if retention.get("Mode"):
        view["mode"] = retention["Mode"]
    for unit in ("Days", "Years"):
        if retention.get(unit):
            view[unit.lower()] = retention[unit]
    return view


# ---------------------------------------------------------------- views to S3's forms


def public_access_block_api():
    return {key: True for key in PUBLIC_ACCESS_BLOCK_KEYS}


def encryption_api(view):
    default = {"SSEAlgorithm": view["sse_algorithm"]}
    rule = {"ApplyServerSideEncryptionByDefault": default}
    if view["sse_algorithm"] == "aws:kms":
        if view.get("kms_key_id"):
            default["KMSMasterKeyID"] = view["kms_key_id"]
        rule["BucketKeyEnabled"] = bool(view.get("bucket_key_enabled"))
    return {"Rules": [rule]}


def object_lock_api(view):
    retention = {"Mode": view["mode"]}
    retention.update({unit.capitalize(): view[unit] for unit in ("days", "years") if view.get(unit)})
    return {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": retention}}


def tags_api(tags):
    return {"TagSet": sorted(ansible_dict_to_boto3_tag_list(tags), key=lambda tag: tag["Key"])}


def merge_lifecycle_rules(rules, wanted_rules):
    """The bucket's rules with ours (``wanted_rules``: {ID: rule or None}) replaced in place, appended,
    or removed where the wanted rule is None. Other rules are kept as they are, only moved from the
    legacy top-level Prefix to Filter, since S3 refuses a mix of both forms in one configuration."""
    merged, placed = [], set()
    for rule in rules or []:
        rule_id = rule.get("ID")
        if rule_id in wanted_rules:
            if wanted_rules[rule_id] is not None and rule_id not in placed:
                merged.append(wanted_rules[rule_id])
                placed.add(rule_id)
            continue
        merged.append(normalize_rule(rule) if "Prefix" in rule and "Filter" not in rule else rule)
    merged += [rule for rule_id, rule in wanted_rules.items() if rule is not None and rule_id not in placed]
    return merged


# ---------------------------------------------------------------- comparison


def kms_keys_match(current, wanted):
    """S3 may report a key given as ID or alias by its ARN: 'key/ID' or 'alias/NAME' at the end."""
    if current == wanted:
        return True
    if not current or not wanted:
        return False
    shorter, longer = sorted((current, wanted), key=len)
    return longer.endswith((":" + shorter, "/" + shorter))


def setting_matches(setting, current, wanted):
    """Whether the bucket's ``current`` value of a setting already means ``wanted``."""
    if setting == "encryption" and (current or {}).get("sse_algorithm") == "aws:kms" == wanted.get("sse_algorithm"):
        return current.get("bucket_key_enabled") == wanted.get("bucket_key_enabled") and kms_keys_match(current.get("kms_key_id"), wanted.get("kms_key_id"))
    return current == wanted


def plan_changes(current, wanted):
    """What the bucket ends up with, and which settings must be written (in write order).
    A setting that already means what is wanted keeps its current form, so the diff stays quiet."""
    after, to_write = {}, []
    for setting in SETTINGS:
        if setting not in wanted:
            continue
        if setting in current and setting_matches(setting, current[setting], wanted[setting]):
            after[setting] = current[setting]
        else:
            after[setting] = wanted[setting]
            to_write.append(setting)
    return after, to_write
