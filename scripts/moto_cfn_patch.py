"""Test-side workaround for moto 5.2.x, not a project change: moto does not implement
CloudFormation's ListImports (aws.get_stack_references calls it). This answers it from the live
stacks' templates: a stack imports an export when its template has `Fn::ImportValue` (or
`!ImportValue`) of the export's name written out (names built with !Sub are not resolved).
Errors are CloudFormation's: a ValidationError for an export that does not exist or that no
stack imports."""
from moto.cloudformation import responses as _responses
from moto.cloudformation.exceptions import ValidationError
from moto.core.responses import ActionResult


def _imports(value, export_name):
    if isinstance(value, dict):
        if value.get("Fn::ImportValue") == export_name:
            return True
        return any(_imports(v, export_name) for v in value.values())
    if isinstance(value, list):
        return any(_imports(v, export_name) for v in value)
    return False


def _list_imports(self):
    export_name = self._get_param("ExportName")
    backend = self.cloudformation_backend
    if export_name not in backend.exports:
        raise ValidationError(message=f"Export '{export_name}' does not exist.")
    importers = [
        stack.name
        for stack in backend.stacks.values()
        if not stack.status.startswith("DELETE") and _imports(stack.template_dict, export_name)
    ]
    if not importers:
        raise ValidationError(message=f"Export '{export_name}' is not imported by any stack.")
    return ActionResult({"Imports": importers})


_responses.CloudFormationResponse.list_imports = _list_imports
