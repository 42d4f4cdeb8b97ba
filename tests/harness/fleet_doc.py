"""The policy documents of docs/fleet-scale.md, made by module_utils/policies.py: each ```json block that
follows a ``<!-- generated: NAME -->`` line is DOCUMENTS[NAME] as the builder makes it today.

A unit test (tests/unit/plugins/module_utils/test_policies.py) checks the committed doc against
``update()``; ``UPDATE_FLEET_DOC=1 pytest tests/unit/plugins/module_utils/test_policies.py -k fleet_doc``
rewrites the blocks."""

from __future__ import annotations

import json
import re

from ansible_collections.systemd_s3.backup.plugins.module_utils import policies

# The example fleet of the doc: what one host of today's per-host design would get, shared by all.
BUCKET = "acme-backups"
PREFIX = "hosts"
OPTIONS = {"permissions": ["backup"], "duplicity_jobs": ["etc"], "sns_topic_arns": ["arn:aws:sns:eu-west-1:123456789012:backup-alerts"]}
TRUST_ANCHOR = "arn:aws:rolesanywhere:eu-west-1:123456789012:trust-anchor/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

BLOCK = re.compile(r"<!-- generated: (?P<name>[a-z0-9-]+) -->\n```json\n(?P<json>.*?)\n```", re.S)


def documents():
    return {
        "roles-anywhere-identity": policies.access_policy(BUCKET, PREFIX, fleet_design="roles_anywhere", **OPTIONS),
        "roles-anywhere-trust": policies.roles_anywhere_trust_policy([TRUST_ANCHOR]),
        "ec2-identity": policies.access_policy(BUCKET, PREFIX, fleet_design="ec2_instance_role", **OPTIONS),
        "ec2-trust": policies.ec2_trust_policy(),
    }


def render(document):
    return json.dumps(document, indent=2)


def update(text):
    """``text`` with every generated block as the builder makes it now; an unknown name raises KeyError."""
    wanted = documents()
    return BLOCK.sub(lambda match: f"<!-- generated: {match['name']} -->\n```json\n{render(wanted[match['name']])}\n```", text)


def blocks(text):
    """name -> parsed JSON of each generated block of ``text``."""
    return {match["name"]: json.loads(match["json"]) for match in BLOCK.finditer(text)}
