"""Test-side workarounds for moto 5.2.x, not a project change, so that a template's IAM roles can be
used with moto's IAM enforcement on:
- a role created by CloudFormation keeps its inline policies (Policies: [{PolicyDocument: ...}]) as
  parsed objects, while moto's enforcement (and GetRolePolicy) expect the JSON text PutRolePolicy
  stores: they are stored as JSON text, as AWS does;
- moto's CloudFormation leaves a list element that is !Ref AWS::NoValue (directly or through !If)
  as null, where CloudFormation removes it: such elements are removed;
- ListServiceSpecificCredentials is not implemented: it answers that a user has none."""
import json
from moto.cloudformation import parsing as _cfn
from moto.iam import models as _iam

_orig_put_policy = _iam.Role.put_policy
def _put_policy(self, policy_name, policy_json):
    if not isinstance(policy_json, str):
        policy_json = json.dumps(policy_json)
    return _orig_put_policy(self, policy_name, policy_json)
_iam.Role.put_policy = _put_policy

_orig_clean_json = _cfn.clean_json
def _clean_json(resource_json, resources_map):
    if isinstance(resource_json, list):
        cleaned = [(_clean_json(v, resources_map), v) for v in resource_json]
        return [c for c, v in cleaned if c is not None or v is None]
    return _orig_clean_json(resource_json, resources_map)
_cfn.clean_json = _clean_json

# moto does not implement ListServiceSpecificCredentials (aws.delete_user lists them before it
# deletes a user); it cannot create any either, so every user has none.
from moto.core.responses import ActionResult as _ActionResult  # noqa: E402
from moto.iam import responses as _iam_responses  # noqa: E402


def _list_service_specific_credentials(self):
    self.backend.get_user(self._get_param("UserName"))  # NoSuchEntity for an unknown user
    return _ActionResult({"ServiceSpecificCredentials": []})


_iam_responses.IamResponse.list_service_specific_credentials = _list_service_specific_credentials
