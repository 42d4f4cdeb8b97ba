"""The bucket module's pure logic: validation, wanted settings, lifecycle merge, comparison."""

from __future__ import annotations

import pytest

from ansible_collections.systemd_s3.backup.plugins.module_utils import bucket_config as bc
from ansible_collections.systemd_s3.backup.plugins.module_utils.common import InputError


def params(**overrides):
    """The module's options with their defaults, as AnsibleModule hands them over."""
    base = {
        "name": "acme-backups",
        "state": "present",
        "block_public_access": True,
        "versioning": True,
        "encryption": "AES256",
        "kms_key_id": None,
        "bucket_key_enabled": True,
        "lifecycle_rule_id": bc.DEFAULT_RULE_ID,
        "lifecycle_prefix": "",
        "transitions": [dict(t) for t in bc.DEFAULT_TRANSITIONS],
        "abort_incomplete_multipart_upload_days": 7,
        "noncurrent_version_expiration_days": None,
        "object_lock": None,
        "tags": None,
        "purge_tags": True,
    }
    base.update(overrides)
    return base


def t(days, storage_class):
    return {"days": days, "storage_class": storage_class}


def input_error(fn, *args):
    with pytest.raises(InputError) as info:
        fn(*args)
    return info.value


# ---------------------------------------------------------------- transitions


def test_default_transitions_are_valid():
    assert bc.validate_transitions(bc.DEFAULT_TRANSITIONS) == bc.DEFAULT_TRANSITIONS


@pytest.mark.parametrize(
    "transitions",
    [
        [],
        None,
        [t(1, "GLACIER")],
        [t(30, "STANDARD_IA"), t(60, "INTELLIGENT_TIERING"), t(61, "ONEZONE_IA")],
        [t(30, "STANDARD_IA"), t(60, "GLACIER_IR"), t(90, "GLACIER"), t(180, "DEEP_ARCHIVE")],
        [t(10, "GLACIER_IR"), t(11, "DEEP_ARCHIVE")],
    ],
)
def test_valid_waterfalls(transitions):
    assert bc.validate_transitions(transitions) == list(transitions or [])


@pytest.mark.parametrize(
    "transitions, field, words",
    [
        ([t(32, "STANDARD_IA"), t(20, "GLACIER")], "transitions[1].days", "20 is not after transitions[0].days 32"),
        ([t(32, "STANDARD_IA"), t(32, "GLACIER")], "transitions[1].days", "not after"),
        ([t(0, "GLACIER")], "transitions[0].days", "not a positive whole number"),
        ([t(True, "GLACIER")], "transitions[0].days", "not a positive whole number"),
        ([t(32, "COLD")], "transitions[0].storage_class", "unknown storage class 'COLD'"),
        ([t(32, "standard_ia")], "transitions[0].storage_class", "unknown storage class"),
        ([t(29, "STANDARD_IA")], "transitions[0].days", "29 is under 30"),
        ([t(10, "GLACIER_IR"), t(20, "ONEZONE_IA")], "transitions[1].days", "under 30"),
        ([t(40, "GLACIER"), t(80, "STANDARD_IA")], "transitions[1].storage_class", "STANDARD_IA is not colder than transitions[0].storage_class GLACIER"),
        ([t(40, "GLACIER"), t(80, "GLACIER")], "transitions[1].storage_class", "appears twice"),
        ([t(32, "STANDARD_IA"), t(50, "GLACIER")], "transitions[1].days", "less than 30 days after transitions[0].days 32"),
        (["GLACIER"], "transitions[0]", "not a dict"),
    ],
)
def test_invalid_transitions_name_the_field_and_the_fix(transitions, field, words):
    error = input_error(bc.validate_transitions, transitions)
    assert error.field == field
    message = str(error)
    assert message.startswith(f"{field}: ") and words in message
    # Every message ends with a fix after the problem.
    assert message.count(". ") >= 1


def test_transition_fix_names_the_order_and_the_minimum():
    assert "STANDARD_IA, INTELLIGENT_TIERING, ONEZONE_IA, GLACIER_IR, GLACIER, DEEP_ARCHIVE" in str(
        input_error(bc.validate_transitions, [t(40, "DEEP_ARCHIVE"), t(80, "GLACIER")])
    )
    assert "Use 62 or more days" in str(input_error(bc.validate_transitions, [t(32, "STANDARD_IA"), t(50, "GLACIER")]))


# ---------------------------------------------------------------- the other options


def test_defaults_validate():
    bc.validate(params())


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"name": "Bad_Name"}, "name"),
        ({"name": "ab"}, "name"),
        ({"lifecycle_rule_id": ""}, "lifecycle_rule_id"),
        ({"lifecycle_rule_id": "x" * 251}, "lifecycle_rule_id"),  # <id>-cold must fit S3's 255
        ({"lifecycle_prefix": "p" * 1025}, "lifecycle_prefix"),
        ({"transitions": [t(5, "STANDARD_IA")]}, "transitions[0].days"),
        ({"abort_incomplete_multipart_upload_days": -1}, "abort_incomplete_multipart_upload_days"),
        ({"noncurrent_version_expiration_days": 0}, "noncurrent_version_expiration_days"),
        ({"kms_key_id": "alias/backups"}, "kms_key_id"),
        ({"kms_key_id": "alias/backups", "encryption": "none"}, "kms_key_id"),
        ({"object_lock": {"mode": "GOVERNANCE", "days": 1}, "versioning": False}, "object_lock"),
        ({"object_lock": {"mode": "GOVERNANCE", "days": None, "years": None}}, "object_lock"),
        ({"object_lock": {"mode": "GOVERNANCE", "days": 1, "years": 1}}, "object_lock"),
        ({"object_lock": {"mode": "GOVERNANCE", "days": 0, "years": None}}, "object_lock.days"),
        ({"object_lock": {"mode": "GOVERNANCE", "days": None, "years": 101}}, "object_lock.years"),
        ({"object_lock": {"mode": "LEGAL", "days": 1}}, "object_lock.mode"),
        ({"tags": {"aws:owner": "x"}}, "tags.aws:owner"),
        ({"tags": {"k": "v" * 257}}, "tags.k"),
        ({"tags": {f"k{i}": "v" for i in range(51)}}, "tags"),
    ],
)
def test_invalid_options(overrides, field):
    error = input_error(bc.validate, params(**overrides))
    assert error.field == field
    assert str(error).startswith(f"{field}: ")


def test_absent_only_checks_the_name():
    bc.validate(params(state="absent", transitions=[t(1, "STANDARD_IA")]))
    assert input_error(bc.validate, params(state="absent", name="-bad")).field == "name"


@pytest.mark.parametrize(
    "overrides",
    [
        {"encryption": "aws:kms", "kms_key_id": "alias/backups"},
        {"abort_incomplete_multipart_upload_days": 0, "transitions": [], "noncurrent_version_expiration_days": 1},
        {"object_lock": {"mode": "COMPLIANCE", "days": None, "years": 1}},
        {"tags": {"team": "ops", "cost": 12}},
        {"versioning": False, "block_public_access": False, "encryption": "none"},
    ],
)
def test_valid_options(overrides):
    bc.validate(params(**overrides))


def test_tags_become_strings():
    assert bc.validate_tags({"cost": 12, "empty": None}) == {"cost": "12", "empty": ""}
    assert bc.validate_tags(None) is None


# ---------------------------------------------------------------- wanted settings


def test_default_lifecycle_rules_split_warm_and_cold():
    # Today's default, 32 days STANDARD_IA and 64 days GLACIER, over two rules: everything goes warm,
    # only data objects (the runner's tag) go cold, so manifests stay readable at once.
    assert bc.lifecycle_rule(params()) == {
        "ID": "systemd-s3-backup",
        "Filter": {"Prefix": ""},
        "Status": "Enabled",
        "Transitions": [{"Days": 32, "StorageClass": "STANDARD_IA"}],
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
    }
    assert bc.cold_lifecycle_rule(params()) == {
        "ID": "systemd-s3-backup-cold",
        "Filter": {"Tag": {"Key": "systemd-s3-backup", "Value": "data"}},
        "Status": "Enabled",
        "Transitions": [{"Days": 64, "StorageClass": "GLACIER"}],
    }
    assert bc.lifecycle_rules(params()) == {"systemd-s3-backup": bc.lifecycle_rule(params()), "systemd-s3-backup-cold": bc.cold_lifecycle_rule(params())}


@pytest.mark.parametrize(
    "transitions, warm, cold",
    [
        ([t(30, "STANDARD_IA"), t(60, "GLACIER_IR"), t(90, "GLACIER"), t(180, "DEEP_ARCHIVE")],
         [t(30, "STANDARD_IA"), t(60, "GLACIER_IR")], [t(90, "GLACIER"), t(180, "DEEP_ARCHIVE")]),
        ([t(30, "INTELLIGENT_TIERING"), t(60, "ONEZONE_IA")], [t(30, "INTELLIGENT_TIERING"), t(60, "ONEZONE_IA")], []),
        ([t(1, "DEEP_ARCHIVE")], [], [t(1, "DEEP_ARCHIVE")]),
        ([], [], []),
    ],
)
def test_transitions_go_to_the_rule_of_their_class(transitions, warm, cold):
    def as_api(steps):
        return [{"Days": step["days"], "StorageClass": step["storage_class"]} for step in steps]

    main = bc.lifecycle_rule(params(transitions=transitions))
    assert main.get("Transitions", []) == as_api(warm)
    cold_rule = bc.cold_lifecycle_rule(params(transitions=transitions))
    assert (cold_rule or {}).get("Transitions", []) == as_api(cold)
    if not cold:
        assert cold_rule is None


def test_cold_rule_with_a_prefix_filters_on_prefix_and_tag():
    rule = bc.cold_lifecycle_rule(params(lifecycle_rule_id="mine", lifecycle_prefix="hosts/"))
    assert rule["ID"] == "mine-cold"
    assert rule["Filter"] == {"And": {"Prefix": "hosts/", "Tags": [{"Key": "systemd-s3-backup", "Value": "data"}]}}
    assert bc.lifecycle_rule(params(lifecycle_prefix="hosts/"))["Filter"] == {"Prefix": "hosts/"}


def test_lifecycle_rule_options():
    rule = bc.lifecycle_rule(
        params(
            lifecycle_rule_id="mine", lifecycle_prefix="hosts/", transitions=[], abort_incomplete_multipart_upload_days=0, noncurrent_version_expiration_days=90
        )
    )
    assert rule == {"ID": "mine", "Filter": {"Prefix": "hosts/"}, "Status": "Enabled", "NoncurrentVersionExpiration": {"NoncurrentDays": 90}}


def test_empty_lifecycle_rule_is_none():
    assert bc.lifecycle_rule(params(transitions=[], abort_incomplete_multipart_upload_days=0)) is None


def test_wanted_settings_defaults():
    wanted = bc.wanted_settings(params())
    assert wanted == {
        "public_access_block": {
            "block_public_acls": True,
            "ignore_public_acls": True,
            "block_public_policy": True,
            "restrict_public_buckets": True,
        },
        "versioning": "Enabled",
        "encryption": {"sse_algorithm": "AES256"},
        "lifecycle_rule": bc.lifecycle_rule_view(bc.lifecycle_rule(params())),
        "lifecycle_cold_rule": bc.lifecycle_rule_view(bc.cold_lifecycle_rule(params())),
    }
    assert wanted["lifecycle_rule"]["abort_incomplete_multipart_upload"] == {"days_after_initiation": 7}
    assert wanted["lifecycle_cold_rule"]["filter"] == {"tag": {"key": "systemd-s3-backup", "value": "data"}}


def test_wanted_settings_manage_only_what_is_asked():
    wanted = bc.wanted_settings(
        params(block_public_access=False, versioning=False, encryption="none", transitions=[], abort_incomplete_multipart_upload_days=0)
    )
    assert wanted == {"lifecycle_rule": None, "lifecycle_cold_rule": None}


def test_wanted_settings_optional_parts():
    wanted = bc.wanted_settings(
        params(
            encryption="aws:kms",
            bucket_key_enabled=False,
            object_lock={"mode": "GOVERNANCE", "days": 30, "years": None},
            tags={"team": "ops"},
        )
    )
    assert wanted["encryption"] == {"sse_algorithm": "aws:kms", "kms_key_id": None, "bucket_key_enabled": False}
    assert wanted["object_lock"] == {"enabled": True, "mode": "GOVERNANCE", "days": 30}
    assert wanted["tags"] == {"team": "ops"}


def test_merged_tags():
    current = {"team": "dev", "owner": "ann", "aws:cloudformation:stack-name": "s"}
    assert bc.merged_tags(current, {"team": "ops"}, purge=True) == {"team": "ops", "aws:cloudformation:stack-name": "s"}
    assert bc.merged_tags(current, {"team": "ops"}, purge=False) == dict(current, team="ops")
    assert bc.merged_tags(None, {}, purge=True) == {}


def test_bucket_arn():
    assert bc.bucket_arn("acme-backups") == "arn:aws:s3:::acme-backups"
    assert bc.bucket_arn("acme-backups", "eu-west-1") == "arn:aws:s3:::acme-backups"
    assert bc.bucket_arn("acme-backups", "cn-north-1") == "arn:aws-cn:s3:::acme-backups"
    assert bc.bucket_arn("acme-backups", "us-gov-west-1") == "arn:aws-us-gov:s3:::acme-backups"


def test_create_bucket_params():
    assert bc.create_bucket_params("b-1", "us-east-1", False) == {"Bucket": "b-1"}
    assert bc.create_bucket_params("b-1", "eu-west-1", True) == {
        "Bucket": "b-1",
        "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"},
        "ObjectLockEnabledForBucket": True,
    }


def test_unsupported_message_names_the_option():
    assert bc.unsupported_message("public_access_block", code="NotImplemented") == (
        "block_public_access: this endpoint does not support public access blocks (it answered NotImplemented); set block_public_access: false"
    )
    for setting in bc.SETTINGS:
        assert bc.unsupported_message(setting, params())


def test_unsupported_lifecycle_names_the_options_that_make_the_rules():
    defaults = params()
    # Refused when written, with transitions: those first (stores without storage classes), the rest if need be.
    assert bc.unsupported_message("lifecycle_rule", defaults, "NotImplemented", written=True) == (
        "transitions: this endpoint does not support lifecycle transitions (it answered NotImplemented): it has no other storage classes. "
        "Set transitions: []; if it still refuses the lifecycle configuration, also set abort_incomplete_multipart_upload_days: 0"
    )
    # Refused when read: no lifecycle configuration at all.
    assert bc.unsupported_message("lifecycle_cold_rule", defaults) == (
        "transitions: this endpoint does not support lifecycle configuration; set transitions: [] and set abort_incomplete_multipart_upload_days: 0"
    )
    without_transitions = params(transitions=[], abort_incomplete_multipart_upload_days=0, noncurrent_version_expiration_days=30)
    assert bc.unsupported_message("lifecycle_rule", without_transitions, written=True) == (
        "noncurrent_version_expiration_days: this endpoint does not support lifecycle configuration; omit noncurrent_version_expiration_days"
    )


# ---------------------------------------------------------------- views of what S3 answers


def test_public_access_block_view():
    assert bc.public_access_block_view(None) == dict.fromkeys(bc.PUBLIC_ACCESS_BLOCK_KEYS.values(), False)
    assert bc.public_access_block_view({"BlockPublicAcls": True, "IgnorePublicAcls": False}) == {
        "block_public_acls": True,
        "ignore_public_acls": False,
        "block_public_policy": False,
        "restrict_public_buckets": False,
    }
    assert bc.public_access_block_view(bc.public_access_block_api()) == dict.fromkeys(bc.PUBLIC_ACCESS_BLOCK_KEYS.values(), True)


def test_versioning_view():
    assert bc.versioning_view({}) == "Disabled"
    assert bc.versioning_view(None) == "Disabled"
    assert bc.versioning_view({"Status": "Suspended", "MFADelete": "Disabled"}) == "Suspended"


def test_encryption_view_and_api_round_trip():
    assert bc.encryption_view(None) == {}
    sse_s3 = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": False}]}
    assert bc.encryption_view(sse_s3) == {"sse_algorithm": "AES256"}
    assert bc.encryption_api({"sse_algorithm": "AES256"}) == {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
    kms = {"sse_algorithm": "aws:kms", "kms_key_id": "alias/backups", "bucket_key_enabled": True}
    assert bc.encryption_api(kms) == {
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/backups"}, "BucketKeyEnabled": True}]
    }
    assert bc.encryption_view(bc.encryption_api(kms)) == kms
    aws_managed = dict(kms, kms_key_id=None, bucket_key_enabled=False)
    assert bc.encryption_api(aws_managed) == {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}, "BucketKeyEnabled": False}]}
    assert bc.encryption_view(bc.encryption_api(aws_managed)) == aws_managed


def test_tags_view_and_api():
    assert bc.tags_view(None) == {}
    assert bc.tags_view([{"Key": "a", "Value": "1"}]) == {"a": "1"}
    assert bc.tags_api({"b": "2", "a": "1"}) == {"TagSet": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]}


def test_object_lock_view_and_api():
    assert bc.object_lock_view(None) == {"enabled": False}
    assert bc.object_lock_view({"ObjectLockEnabled": "Enabled"}) == {"enabled": True}
    # moto reports the unused period as 0.
    answer = {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 5, "Years": 0}}}
    assert bc.object_lock_view(answer) == {"enabled": True, "mode": "GOVERNANCE", "days": 5}
    assert bc.object_lock_api({"enabled": True, "mode": "COMPLIANCE", "years": 2}) == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 2}},
    }


def test_normalize_rule_forms():
    assert bc.normalize_rule(None) is None
    legacy = {"ID": "x", "Prefix": "logs/", "Status": "Enabled", "Expiration": {"Days": 5}}
    assert bc.normalize_rule(legacy) == {"ID": "x", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 5}}
    assert bc.normalize_rule({"ID": "x", "Filter": {}, "Status": "Enabled"})["Filter"] == {"Prefix": ""}
    tagged = {"ID": "x", "Filter": {"Tag": {"Key": "k", "Value": "v"}}, "Status": "Enabled"}
    assert bc.normalize_rule(tagged) == tagged
    unordered = {"ID": "x", "Filter": {"Prefix": ""}, "Transitions": [{"Days": 64, "StorageClass": "GLACIER"}, {"Days": 32, "StorageClass": "STANDARD_IA"}]}
    assert [step["Days"] for step in bc.normalize_rule(unordered)["Transitions"]] == [32, 64]
    assert "Transitions" not in bc.normalize_rule({"ID": "x", "Transitions": []})


def test_lifecycle_rule_view():
    assert bc.lifecycle_rule_view(None) is None
    transitions = [t(32, "STANDARD_IA"), t(64, "GLACIER_IR")]
    view = bc.lifecycle_rule_view(bc.lifecycle_rule(params(noncurrent_version_expiration_days=90, transitions=transitions)))
    assert view == {
        "id": "systemd-s3-backup",
        "filter": {"prefix": ""},
        "status": "Enabled",
        "transitions": [{"days": 32, "storage_class": "STANDARD_IA"}, {"days": 64, "storage_class": "GLACIER_IR"}],
        "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
        "noncurrent_version_expiration": {"noncurrent_days": 90},
    }
    # What S3 answers in another but equivalent form compares equal.
    answered = dict(bc.lifecycle_rule(params(noncurrent_version_expiration_days=90, transitions=transitions)), Filter={})
    answered["Transitions"] = list(reversed(answered["Transitions"]))
    assert bc.lifecycle_rule_view(answered) == view


def test_find_rule():
    rules = [{"ID": "a"}, {"ID": "b"}]
    assert bc.find_rule(rules, "b") == {"ID": "b"}
    assert bc.find_rule(rules, "c") is None
    assert bc.find_rule(None, "a") is None


# ---------------------------------------------------------------- merging our rule


OTHER = {"ID": "operator", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 3}}
OURS_OLD = {"ID": "systemd-s3-backup", "Filter": {"Prefix": ""}, "Status": "Disabled"}
OURS = bc.lifecycle_rule(params())
COLD = bc.cold_lifecycle_rule(params())
WANTED = bc.lifecycle_rules(params())
# What this module wrote before the split: one rule, GLACIER included, over every object.
SINGLE_RULE = {
    "ID": "systemd-s3-backup",
    "Filter": {"Prefix": ""},
    "Status": "Enabled",
    "Transitions": [{"Days": 32, "StorageClass": "STANDARD_IA"}, {"Days": 64, "StorageClass": "GLACIER"}],
    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
}


def test_merge_inserts_our_rules_after_the_others():
    assert bc.merge_lifecycle_rules([OTHER], WANTED) == [OTHER, OURS, COLD]
    assert bc.merge_lifecycle_rules(None, WANTED) == [OURS, COLD]


def test_merge_replaces_our_rules_in_place():
    assert bc.merge_lifecycle_rules([OURS_OLD, OTHER], WANTED) == [OURS, OTHER, COLD]
    assert bc.merge_lifecycle_rules([dict(COLD, Status="Disabled"), OTHER, OURS_OLD], WANTED) == [COLD, OTHER, OURS]
    # A duplicated ID (hand-edited configuration) ends up once.
    assert bc.merge_lifecycle_rules([OURS_OLD, OTHER, OURS_OLD], WANTED) == [OURS, OTHER, COLD]


def test_merge_removes_our_rules():
    no_cold = bc.lifecycle_rules(params(transitions=[t(32, "STANDARD_IA")]))
    assert bc.merge_lifecycle_rules([OTHER, OURS_OLD, COLD], no_cold) == [OTHER, bc.lifecycle_rule(params(transitions=[t(32, "STANDARD_IA")]))]
    nothing = bc.lifecycle_rules(params(transitions=[], abort_incomplete_multipart_upload_days=0))
    assert bc.merge_lifecycle_rules([OTHER, OURS_OLD, COLD], nothing) == [OTHER]
    assert bc.merge_lifecycle_rules([OURS_OLD], nothing) == []


def test_merge_moves_legacy_prefix_rules_to_filter():
    legacy = {"ID": "old", "Prefix": "logs/", "Status": "Enabled", "Expiration": {"Days": 5}}
    merged = bc.merge_lifecycle_rules([legacy], WANTED)
    assert merged == [{"ID": "old", "Filter": {"Prefix": "logs/"}, "Status": "Enabled", "Expiration": {"Days": 5}}, OURS, COLD]


def test_upgrade_from_the_single_rule():
    """A bucket as the module left it before the split: its own rule is rewritten without GLACIER,
    the cold rule is added, the operator's rule stays as it is."""
    current = {"lifecycle_rule": bc.lifecycle_rule_view(SINGLE_RULE), "lifecycle_cold_rule": None}
    wanted = bc.wanted_settings(params())
    after, to_write = bc.plan_changes(dict(wanted, **current), wanted)
    assert to_write == ["lifecycle_rule", "lifecycle_cold_rule"]
    assert after["lifecycle_rule"]["transitions"] == [{"days": 32, "storage_class": "STANDARD_IA"}]
    assert after["lifecycle_cold_rule"]["transitions"] == [{"days": 64, "storage_class": "GLACIER"}]
    assert bc.merge_lifecycle_rules([OTHER, SINGLE_RULE], WANTED) == [OTHER, OURS, COLD]
    # ... and once upgraded, nothing more to do.
    assert bc.plan_changes(dict(wanted), wanted)[1] == []


# ---------------------------------------------------------------- comparison


@pytest.mark.parametrize(
    "current, wanted, same",
    [
        ("alias/backups", "alias/backups", True),
        ("arn:aws:kms:eu-west-1:111122223333:alias/backups", "alias/backups", True),
        ("arn:aws:kms:eu-west-1:111122223333:key/1234-ab", "1234-ab", True),
        ("1234-ab", "arn:aws:kms:eu-west-1:111122223333:key/1234-ab", True),
        ("arn:aws:kms:eu-west-1:111122223333:key/1234-ab", "234-ab", False),
        (None, "alias/backups", False),
        ("alias/backups", None, False),
        (None, None, True),
    ],
)
def test_kms_keys_match(current, wanted, same):
    assert bc.kms_keys_match(current, wanted) is same


def test_setting_matches():
    kms = {"sse_algorithm": "aws:kms", "kms_key_id": "alias/k", "bucket_key_enabled": True}
    assert bc.setting_matches("encryption", dict(kms, kms_key_id="arn:aws:kms:r:1:alias/k"), kms)
    assert not bc.setting_matches("encryption", dict(kms, bucket_key_enabled=False), kms)
    assert not bc.setting_matches("encryption", {"sse_algorithm": "AES256"}, kms)
    assert not bc.setting_matches("encryption", {}, {"sse_algorithm": "AES256"})
    assert bc.setting_matches("versioning", "Enabled", "Enabled")
    assert not bc.setting_matches("versioning", "Suspended", "Enabled")
    assert bc.setting_matches("lifecycle_rule", None, None)


def test_plan_changes_nothing_to_do():
    wanted = bc.wanted_settings(params())
    after, to_write = bc.plan_changes(dict(wanted), wanted)
    assert (after, to_write) == (wanted, [])


def test_plan_changes_writes_only_what_differs_in_order():
    wanted = bc.wanted_settings(params(tags={"a": "1"}, object_lock={"mode": "GOVERNANCE", "days": 1, "years": None}))
    current = dict(wanted, versioning="Suspended", object_lock={"enabled": False}, tags={})
    after, to_write = bc.plan_changes(current, wanted)
    assert to_write == ["versioning", "tags", "object_lock"]
    assert after == wanted


def test_plan_changes_keeps_equivalent_current_form():
    wanted = bc.wanted_settings(params(encryption="aws:kms", kms_key_id="alias/k"))
    current = dict(wanted, encryption=dict(wanted["encryption"], kms_key_id="arn:aws:kms:r:1:alias/k"))
    after, to_write = bc.plan_changes(current, wanted)
    assert to_write == []
    assert after["encryption"]["kms_key_id"] == "arn:aws:kms:r:1:alias/k"


def test_plan_changes_for_a_new_bucket():
    wanted = bc.wanted_settings(params(tags={}))
    after, to_write = bc.plan_changes(bc.new_bucket_state(), wanted)
    # A new bucket has no tags and no lifecycle rule: nothing to write for an empty tag set. The lifecycle
    # rules first: a store may refuse their transitions only when they are written (SeaweedFS).
    assert to_write == ["lifecycle_rule", "lifecycle_cold_rule", "public_access_block", "versioning", "encryption"]
    assert after == wanted
    without_rule = bc.wanted_settings(params(transitions=[], abort_incomplete_multipart_upload_days=0))
    assert not set(bc.LIFECYCLE_SETTINGS) & set(bc.plan_changes(bc.new_bucket_state(), without_rule)[1])


def test_new_bucket_state_with_object_lock():
    assert bc.new_bucket_state()["object_lock"] == {"enabled": False}
    assert bc.new_bucket_state(object_lock=True)["object_lock"] == {"enabled": True}
    wanted = bc.wanted_settings(params(object_lock={"mode": "GOVERNANCE", "days": 1, "years": None}))
    assert "object_lock" in bc.plan_changes(bc.new_bucket_state(object_lock=True), wanted)[1]
