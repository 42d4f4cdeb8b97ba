# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of every module that reads the stored backups from the control node (backups_info,
backups_check, prune): where they are. Their argument spec is module_utils/backups_store.STORE_OPTIONS."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  bucket:
    description:
      - The bucket the hosts' backups are stored in.
    type: str
    required: true
  prefix:
    description:
      - The key prefix under which each host has its folder C(<prefix>/<host>/), as given to the
        roles C(systemd_s3.backup.aws) and C(systemd_s3.backup.jobs).
    type: str
    default: hosts
"""
