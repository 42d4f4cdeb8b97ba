# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""IAM's requests about a backup principal, a user or a role, by what they do: shared by the access
module (one principal) and the fleet_access module (all of them)."""

from __future__ import annotations

# What IAM answers about a user, role, policy or instance profile that does not exist.
NO_SUCH_ENTITY = ("NoSuchEntity",)
# IAM keeps at most this many versions of a managed policy.
IAM_MAX_POLICY_VERSIONS = 5
# The description of the managed policy the access module makes per principal: how fleet_access tells
# the policies it migrates away from (and may delete once unused) from anyone else's.
PER_PRINCIPAL_POLICY_DESCRIPTION = "systemd_s3.backup: least-privilege access of one backup principal"
# The description of the managed policy a fleet's principals share (fleet_access): how a run tells
# another fleet's principals (another bucket, the same names) from its own.
SHARED_POLICY_DESCRIPTION = "systemd_s3.backup: what every backup principal of the fleet shares"


class PrincipalRequests:
    """IAM's requests about one user or one role, by what they do: IAM has a get_user and a get_role,
    an attach_user_policy and an attach_role_policy ... ``iam`` is the client they are made with."""

    def __init__(self, iam, kind, name):
        user = kind == "user"
        self.iam = iam
        self.name_param = {"UserName": name} if user else {"RoleName": name}
        self.get = iam.get_user if user else iam.get_role
        self.create = iam.create_user if user else iam.create_role
        self.delete = iam.delete_user if user else iam.delete_role
        self.tag = iam.tag_user if user else iam.tag_role
        self.untag = iam.untag_user if user else iam.untag_role
        self.attach_policy = iam.attach_user_policy if user else iam.attach_role_policy
        self.detach_policy = iam.detach_user_policy if user else iam.detach_role_policy
        self.delete_inline_policy = iam.delete_user_policy if user else iam.delete_role_policy
        self.put_inline_policy = iam.put_user_policy if user else iam.put_role_policy
        # Listings, by the names of botocore's paginators.
        self.attached_policies_listing = "list_attached_user_policies" if user else "list_attached_role_policies"
        self.inline_policies_listing = "list_user_policies" if user else "list_role_policies"
