# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module and filter of this collection shares: input errors that name the field and
the fix, and diff/result helpers. How the modules call AWS is in aws.py."""

from __future__ import annotations

import ipaddress


class InputError(ValueError):
    """Bad input, found before any AWS call. The message names the field and how to fix it."""

    def __init__(self, field, problem, fix):
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(f"{field}: {problem}. {fix}")


def validate_or_fail(module, validator, *args, **kwargs):
    """Run ``validator``; turn an InputError into a clean module failure before any API call."""
    try:
        return validator(*args, **kwargs)
    except InputError as e:
        module.fail_json(msg=str(e), field=e.field)


def normalize_cidrs(field, values):
    """Canonical CIDR strings for an ``aws:SourceIp`` list; a bare address becomes /32 (/128)."""
    cidrs = []
    for value in values or []:
        try:
            cidrs.append(str(ipaddress.ip_network(str(value).strip(), strict=False)))
        except ValueError:
            raise InputError(
                field,
                f"{value!r} is not an IP address or CIDR block",
                "Use forms like 203.0.113.7, 203.0.113.0/24 or 2001:db8::/32",
            ) from None
    return sorted(set(cidrs))


def diff(before, after):
    """An Ansible diff dict, shown by ``--diff``."""
    return {"before": before if before is not None else {}, "after": after if after is not None else {}}
