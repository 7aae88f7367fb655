"""Test-side workarounds for moto 5.2.x, not project changes. ListImports: moto does not implement
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


# Change sets: moto looks a change set up by name across every stack (the StackName of
# Describe/Delete/ExecuteChangeSet is ignored), fails with a server error deleting one that does
# not exist, and leaves an executed change set AVAILABLE (so it could be executed again) with the
# stack still REVIEW_IN_PROGRESS. CloudFormation scopes names to the stack, answers
# ChangeSetNotFound, marks the executed change set EXECUTE_COMPLETE, deletes the stack's other
# change sets and finishes the stack's create or update (template, outputs and exports included).
from moto.cloudformation.exceptions import CloudFormationError  # noqa: E402
from moto.core.responses import EmptyResult  # noqa: E402


class ChangeSetNotFound(CloudFormationError):
    code = "ChangeSetNotFound"
    # moto finds an error's service model by the module it is defined in.
    __module__ = "moto.cloudformation.exceptions"

    def __init__(self, name):
        super().__init__(f"ChangeSet [{name}] does not exist")


def _change_set(backend, name, stack_name):
    if name in backend.change_sets:
        return backend.change_sets[name]
    for change_set in backend.change_sets.values():
        if change_set.change_set_name == name and stack_name in (
            None,
            change_set.stack_name,
            change_set.stack_id,
        ):
            return change_set
    raise ChangeSetNotFound(name)


def _describe_change_set(self):
    backend = self.cloudformation_backend
    found = _change_set(backend, self._get_param("ChangeSetName"), self._get_param("StackName"))
    return ActionResult(found)


def _delete_change_set(self):
    backend = self.cloudformation_backend
    found = _change_set(backend, self._get_param("ChangeSetName"), self._get_param("StackName"))
    del backend.change_sets[found.change_set_id]
    return EmptyResult()


def _execute_change_set(self):
    backend = self.cloudformation_backend
    found = _change_set(backend, self._get_param("ChangeSetName"), self._get_param("StackName"))
    if found.execution_status != "AVAILABLE":
        raise ValidationError(
            message=f"ChangeSet [{found.change_set_id}] cannot be executed in its current "
            f"execution status of [{found.execution_status}]"
        )
    backend.execute_change_set(change_set_name=found.change_set_id, stack_name=found.stack_name)
    found.execution_status = "EXECUTE_COMPLETE"
    stack = backend.stacks[found.stack_id]
    stack.status = "CREATE_COMPLETE" if found.change_set_type == "CREATE" else "UPDATE_COMPLETE"
    # The stack takes the change set's template, parameters, outputs and exports.
    stack.template = found.template
    stack._parse_template()
    stack.parameters = found.parameters
    stack.output_map = stack._create_output_map()
    for export in stack.exports:
        backend.exports[export.name] = export
    token = self._get_param("ClientRequestToken")
    for event in stack.events[-2:]:
        event.client_request_token = token
    for other in [c for c in backend.change_sets.values() if c.stack_id == found.stack_id]:
        if other is not found:
            del backend.change_sets[other.change_set_id]
    return EmptyResult()


_responses.CloudFormationResponse.describe_change_set = _describe_change_set
_responses.CloudFormationResponse.delete_change_set = _delete_change_set
_responses.CloudFormationResponse.execute_change_set = _execute_change_set
