"""The filter plugins, called directly and through a real template."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.systemd_s3.backup.plugins.filter.access_policy import FilterModule
from ansible_collections.systemd_s3.backup.plugins.module_utils import policies

FILTERS = FilterModule().filters()
TOPIC = "arn:aws:sns:eu-west-1:123456789012:backup-alerts"


def test_access_policy_filter_returns_what_the_module_attaches():
    got = FILTERS["access_policy"]("my-bucket", prefix="hosts/web1", permissions=["backup"], source_ip=["203.0.113.0/24"], sns_topic_arns=[TOPIC])
    assert got == policies.access_policy("my-bucket", "hosts/web1", ["backup"], ["203.0.113.0/24"], [TOPIC])


def test_access_policy_filter_passes_every_option():
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    options = {
        "duplicity_jobs": ["repos"],
        "kms_key_arn": key,
        "region": "eu-west-1",
        "source_vpce": ["vpce-0123456789abcdef0"],
        "source_vpc": ["vpc-1a2b3c4d"],
    }
    got = FILTERS["access_policy"]("my-bucket", prefix="hosts/web1", permissions=["backup", "restore"], **options)
    assert got == policies.access_policy("my-bucket", "hosts/web1", ["backup", "restore"], **options)
    assert {"ReadOwnDuplicityChains", "UseBucketKey", "DenyOutsideAllowedNetworks"} <= {s["Sid"] for s in got["Statement"]}


def test_access_policy_filter_defaults_to_backup():
    assert FILTERS["access_policy"]("my-bucket", prefix="hosts/web1") == policies.access_policy("my-bucket", "hosts/web1", ["backup"])


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"prefix": "hosts/*"}, "prefix"),
        ({"prefix": None}, "prefix"),
        ({"prefix": "h", "permissions": ["everything"]}, "permissions"),
        ({"prefix": "h", "source_ip": ["300.0.0.1"]}, "source_ip"),
        ({"prefix": "h", "source_ip": ["10.0.0.5"]}, "source_ip"),
        ({"prefix": "h", "source_vpce": ["endpoint"]}, "source_vpce"),
        ({"prefix": "h", "source_vpc": ["vpc-XYZ"]}, "source_vpc"),
        ({"prefix": "h", "duplicity_jobs": ["Bad Name"]}, "duplicity_jobs"),
        ({"prefix": "h", "kms_key_arn": "alias/backups"}, "kms_key_arn"),
    ],
)
def test_access_policy_filter_bad_input(kwargs, field):
    with pytest.raises(AnsibleFilterError, match=f"^{field}: "):
        FILTERS["access_policy"]("my-bucket", **kwargs)


def test_check_policy_filter_returns_the_builders_policy():
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert FILTERS["check_policy"]("my-bucket") == policies.check_policy("my-bucket", "hosts")
    assert FILTERS["check_policy"]("my-bucket", prefix="fleet", kms_key_arn=key) == policies.check_policy("my-bucket", "fleet", kms_key_arn=key)


@pytest.mark.parametrize("kwargs, field", [({"prefix": "hosts/*"}, "prefix"), ({"kms_key_arn": "alias/backups"}, "kms_key_arn")])
def test_check_policy_filter_bad_input(kwargs, field):
    with pytest.raises(AnsibleFilterError, match=f"^{field}: "):
        FILTERS["check_policy"]("my-bucket", **kwargs)
    with pytest.raises(AnsibleFilterError, match="^check_policy: .*permissions"):
        FILTERS["check_policy"]("my-bucket", permissions=["restore"])


def test_access_policy_filter_bad_bucket():
    with pytest.raises(AnsibleFilterError, match="^bucket: .*not a valid S3 bucket name"):
        FILTERS["access_policy"]("My_Bucket", prefix="h")


def test_iam_name_filter():
    assert FILTERS["iam_name"]("web1.example.com", prefix="backup-") == "backup-web1.example.com"
    assert FILTERS["iam_name"]("db 1") == "db-1"
    assert len(FILTERS["iam_name"]("x" * 100)) == 64
    with pytest.raises(AnsibleFilterError, match="iam_name"):
        FILTERS["iam_name"]("")


def test_filters_in_a_template(run_module):
    """Through Ansible's templating, by their fully qualified names."""
    expression = (
        "{{ {'policy': 'my-bucket' | systemd_s3.backup.access_policy(prefix='hosts/web1', permissions=['backup', 'restore']),"
        " 'name': 'web 1' | systemd_s3.backup.iam_name(prefix='backup-')} }}"
    )
    msg = run_module("ansible.builtin.debug", {"msg": expression})["msg"]
    assert msg["name"] == "backup-web-1"
    assert msg["policy"] == policies.access_policy("my-bucket", "hosts/web1", ["backup", "restore"])


def test_filter_error_in_a_template(run_module):
    result = run_module("ansible.builtin.debug", {"msg": "{{ 'my-bucket' | systemd_s3.backup.access_policy(prefix='hosts/..') }}"})
    assert result["failed"]
    assert "prefix: 'hosts/..' has an unsafe segment '..'" in result["msg"]


def test_prune_policy_filter_returns_the_builders_policy():
    assert FILTERS["prune_policy"]("my-bucket") == policies.prune_policy("my-bucket", "hosts")
    assert FILTERS["prune_policy"]("my-bucket", prefix="fleet", partition="aws-cn") == policies.prune_policy("my-bucket", "fleet", "aws-cn")
    with pytest.raises(AnsibleFilterError, match="^prefix: "):
        FILTERS["prune_policy"]("my-bucket", prefix="hosts/*")
