"""Test-side workaround for moto 5.2.x, not a project change: ModifyDBInstance with
CloudwatchLogsExportConfiguration.EnableLogTypes appends the log types to the instance's list
each time, so asking twice for the same export lists it twice. RDS keeps a set: enabling a log
type that is already exported changes nothing (aws.rds.modify_db_instance relies on that when a
start is replayed)."""
from moto.rds.models import DBInstance

_update = DBInstance.update


def _update_once(self, *args, **kwargs):
    _update(self, *args, **kwargs)
    self.enabled_cloudwatch_logs_exports = list(dict.fromkeys(self.enabled_cloudwatch_logs_exports))


DBInstance.update = _update_once
