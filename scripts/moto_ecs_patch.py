"""Test-side stand-in for containers, not a project change: moto runs no containers, and its
ECS tasks jump to STOPPED (exit code 0) the first time they are described. Here a task stays
RUNNING until a test finishes it, as its container would:

    ECS TagResource on the task's ARN with the tag `moto-exit-code` = N
        stops the task: lastStatus STOPPED, stopCode EssentialContainerExited, every container
        exited with N (the tag itself is not kept)
    ECS TagResource with `moto-stopped-reason` = TEXT (alone)
        stops it before its container ran (no exit code), e.g. CannotPullContainerError

StopTask stops it as ECS does: SIGTERM, so containers exit with 143, and the reason given.
"""
from moto.ecs import models as ecs_models

Task = ecs_models.Task
Backend = ecs_models.EC2ContainerServiceBackend


def _status(self):
    return self._status


def _set_status(self, value):
    self._status = value


Task.status = property(_status, _set_status)

_tag_resource = Backend.tag_resource
_stop_task = Backend.stop_task


def _find_task(backend, arn):
    for tasks in backend.tasks.values():
        if arn in tasks:
            return tasks[arn]
    return None


def _finish(task, exit_code, reason, stop_code):
    task.last_status = "STOPPED"
    task.desired_status = "STOPPED"
    task.stopped_reason = reason
    task.stop_code = stop_code
    for container in task.containers:
        container.last_status = "STOPPED"
        container.exitCode = exit_code


def tag_resource(self, arn, tags):
    task = _find_task(self, arn) if ":task/" in arn else None
    if task is not None and "moto-exit-code" in tags:
        _finish(task, int(tags["moto-exit-code"]), "Essential container in task exited",
                "EssentialContainerExited")
        return
    if task is not None and "moto-stopped-reason" in tags:
        _finish(task, None, tags["moto-stopped-reason"], "TaskFailedToStart")
        return
    _tag_resource(self, arn, tags)


def stop_task(self, cluster_str, task_str, reason):
    task = _stop_task(self, cluster_str, task_str, reason)
    _finish(task, 143, reason or "Task stopped by user", "UserInitiated")
    return task


Backend.tag_resource = tag_resource
Backend.stop_task = stop_task
