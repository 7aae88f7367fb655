//! `aws.rds.modify_db_instance`: changes an RDS DB instance (`api_params` is RDS's
//! ModifyDBInstance request in RDS's own names) and, when the change applies immediately,
//! waits until the instance is available again with nothing pending.

use std::time::Duration;

use serde::Deserialize;

use super::AccountId;
use crate::actions::{Mode, Schema, TypeSpec};

/// The `aws.rds.modify_db_instance` type.
pub struct ModifyDbInstance;

impl Schema for ModifyDbInstance {
    const SPEC: TypeSpec = TypeSpec {
        name: "aws.rds.modify_db_instance",
        mode: Mode::Async,
        poll_interval: Duration::from_secs(30),
        can_cancel: false,
        replay_safe: true,
    };
    const FEATURE: &'static str = "aws-rds";
    type Params = Params;

    fn abort_note() -> String {
        "an RDS modification cannot be cancelled; the instance keeps changing in AWS".into()
    }
}

/// Params of `aws.rds.modify_db_instance`.
#[allow(missing_docs)] // RDS's own names
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The ModifyDBInstance request, keys as RDS spells them (`DBInstanceIdentifier`,
    /// `ApplyImmediately`, `CloudwatchLogsExportConfiguration`, …).
    pub api_params: ModifyRequest,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
}

super::aws_target!(Params);

/// `CloudwatchLogsExportConfiguration` of the request.
#[allow(missing_docs)] // RDS's own names
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogExports {
    #[serde(rename = "EnableLogTypes", default)]
    pub enable_log_types: Vec<String>,
    #[serde(rename = "DisableLogTypes", default)]
    pub disable_log_types: Vec<String>,
}

/// Declares the request's optional fields once: their RDS names for the schema, and the
/// SDK setter each one feeds.
macro_rules! modify_request {
    ($($api:literal => $field:ident: $ty:ty => $setter:ident,)*) => {
        /// The ModifyDBInstance request (its settings apart from the master password, which
        /// does not belong in an action file: use `ManageMasterUserPassword`).
        #[allow(missing_docs)] // RDS's own names
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct ModifyRequest {
            #[serde(rename = "DBInstanceIdentifier")]
            pub db_instance_identifier: String,
            #[serde(rename = "CloudwatchLogsExportConfiguration")]
            pub cloudwatch_logs_export_configuration: Option<LogExports>,
            $(
                #[serde(rename = $api)]
                pub $field: Option<$ty>,
            )*
        }

        #[cfg(feature = "aws-rds")]
        impl ModifyRequest {
            /// The request as an SDK call.
            fn fill(&self, call: calls::Call) -> calls::Call {
                let logs = self.cloudwatch_logs_export_configuration.as_ref().map(|c| {
                    aws_sdk_rds::types::CloudwatchLogsExportConfiguration::builder()
                        .set_enable_log_types(Some(c.enable_log_types.clone()))
                        .set_disable_log_types(Some(c.disable_log_types.clone()))
                        .build()
                });
                call.db_instance_identifier(&self.db_instance_identifier)
                    .set_cloudwatch_logs_export_configuration(logs)
                    $(.$setter(self.$field.clone()))*
            }
        }
    };
}

modify_request! {
    "AllocatedStorage" => allocated_storage: i32 => set_allocated_storage,
    "DBInstanceClass" => db_instance_class: String => set_db_instance_class,
    "DBSubnetGroupName" => db_subnet_group_name: String => set_db_subnet_group_name,
    "DBSecurityGroups" => db_security_groups: Vec<String> => set_db_security_groups,
    "VpcSecurityGroupIds" => vpc_security_group_ids: Vec<String> => set_vpc_security_group_ids,
    "ApplyImmediately" => apply_immediately: bool => set_apply_immediately,
    "DBParameterGroupName" => db_parameter_group_name: String => set_db_parameter_group_name,
    "BackupRetentionPeriod" => backup_retention_period: i32 => set_backup_retention_period,
    "PreferredBackupWindow" => preferred_backup_window: String => set_preferred_backup_window,
    "PreferredMaintenanceWindow" => preferred_maintenance_window: String => set_preferred_maintenance_window,
    "MultiAZ" => multi_az: bool => set_multi_az,
    "EngineVersion" => engine_version: String => set_engine_version,
    "AllowMajorVersionUpgrade" => allow_major_version_upgrade: bool => set_allow_major_version_upgrade,
    "AutoMinorVersionUpgrade" => auto_minor_version_upgrade: bool => set_auto_minor_version_upgrade,
    "LicenseModel" => license_model: String => set_license_model,
    "Iops" => iops: i32 => set_iops,
    "StorageThroughput" => storage_throughput: i32 => set_storage_throughput,
    "OptionGroupName" => option_group_name: String => set_option_group_name,
    "NewDBInstanceIdentifier" => new_db_instance_identifier: String => set_new_db_instance_identifier,
    "StorageType" => storage_type: String => set_storage_type,
    "CACertificateIdentifier" => ca_certificate_identifier: String => set_ca_certificate_identifier,
    "CopyTagsToSnapshot" => copy_tags_to_snapshot: bool => set_copy_tags_to_snapshot,
    "MonitoringInterval" => monitoring_interval: i32 => set_monitoring_interval,
    "DBPortNumber" => db_port_number: i32 => set_db_port_number,
    "PubliclyAccessible" => publicly_accessible: bool => set_publicly_accessible,
    "MonitoringRoleArn" => monitoring_role_arn: String => set_monitoring_role_arn,
    "PromotionTier" => promotion_tier: i32 => set_promotion_tier,
    "EnableIAMDatabaseAuthentication" => enable_iam_database_authentication: bool => set_enable_iam_database_authentication,
    "EnablePerformanceInsights" => enable_performance_insights: bool => set_enable_performance_insights,
    "PerformanceInsightsKMSKeyId" => performance_insights_kms_key_id: String => set_performance_insights_kms_key_id,
    "PerformanceInsightsRetentionPeriod" => performance_insights_retention_period: i32 => set_performance_insights_retention_period,
    "DeletionProtection" => deletion_protection: bool => set_deletion_protection,
    "MaxAllocatedStorage" => max_allocated_storage: i32 => set_max_allocated_storage,
    "CertificateRotationRestart" => certificate_rotation_restart: bool => set_certificate_rotation_restart,
    "EnableCustomerOwnedIp" => enable_customer_owned_ip: bool => set_enable_customer_owned_ip,
    "NetworkType" => network_type: String => set_network_type,
    "ManageMasterUserPassword" => manage_master_user_password: bool => set_manage_master_user_password,
    "RotateMasterUserPassword" => rotate_master_user_password: bool => set_rotate_master_user_password,
    "MasterUserSecretKmsKeyId" => master_user_secret_kms_key_id: String => set_master_user_secret_kms_key_id,
    "MultiTenant" => multi_tenant: bool => set_multi_tenant,
    "DedicatedLogVolume" => dedicated_log_volume: bool => set_dedicated_log_volume,
    "Engine" => engine: String => set_engine,
}

#[cfg(not(feature = "aws-rds"))]
#[cfg(feature = "aws")]
super::needs_feature!(ModifyDbInstance);

#[cfg(feature = "aws-rds")]
mod calls {
    use aws_sdk_rds::types::{DbInstance, PendingModifiedValues};
    use aws_sdk_rds::Client;
    use serde_json::{json, Map, Value};

    use super::{ModifyDbInstance, Params};
    use crate::actions::aws::{call_failed, required};
    use crate::actions::{Behaviour, CheckRequest, Env, LogSink, Outcome, Schema, StartRequest};
    use crate::aws::describe;
    use crate::log::Level;

    pub(super) type Call =
        aws_sdk_rds::operation::modify_db_instance::builders::ModifyDBInstanceFluentBuilder;

    impl Behaviour for ModifyDbInstance {
        async fn start(env: &Env, params: Params, request: &StartRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => start(&aws.rds(&params.target(aws)).await, &params, request).await,
                Err(outcome) => outcome,
            }
        }

        async fn check(env: &Env, params: Params, request: &CheckRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => check(&aws.rds(&params.target(aws)).await, &params, request).await,
                Err(outcome) => outcome,
            }
        }
    }

    /// The instance's name once the request is applied (it may rename it).
    fn instance_id(p: &Params) -> &str {
        let request = &p.api_params;
        match &request.new_db_instance_identifier {
            Some(new) if request.apply_immediately == Some(true) => new,
            _ => &request.db_instance_identifier,
        }
    }

    async fn start(client: &Client, p: &Params, request: &StartRequest) -> Outcome {
        let id = &p.api_params.db_instance_identifier;
        if let Err(problem) = required("api_params.DBInstanceIdentifier", id) {
            return problem.into_outcome();
        }
        modify(client, p, &request.log).await
    }

    /// The handle of a modification RDS refused to take yet (the instance is busy).
    fn waiting() -> Outcome {
        Outcome::Running {
            handle: json!({"waiting_to_modify": true}),
            check_after: ModifyDbInstance::SPEC.poll_interval,
        }
    }

    /// Sends the request. Sending it again (a replayed start) is harmless: the settings are
    /// the same, and RDS answers "no modifications" or changes nothing.
    async fn modify(client: &Client, p: &Params, log: &LogSink) -> Outcome {
        let id = &p.api_params.db_instance_identifier;
        let modified = p.api_params.fill(client.modify_db_instance()).send().await;
        let instance = match modified {
            Ok(out) => out.db_instance().cloned(),
            Err(e) if describe(&e).contains("No modifications were requested") => {
                log.send(
                    Level::Info,
                    format!("DB instance {id} already has these settings"),
                );
                None
            }
            // Busy (being created, backed up, already modifying): tried again once it is
            // available.
            Err(e) if crate::aws::code(&e).as_deref() == Some("InvalidDBInstanceState") => {
                log.send(
                    Level::Info,
                    format!("DB instance {id} is busy; the change waits until it is available"),
                );
                return waiting();
            }
            Err(e) => return call_failed(&format!("ModifyDBInstance {id}"), &e),
        };
        if p.api_params.apply_immediately != Some(true) {
            log.send(
                Level::Info,
                format!("DB instance {id}: the change waits for the maintenance window"),
            );
            return Outcome::Complete {
                outputs: outputs(p, instance.as_ref()),
            };
        }
        log.send(Level::Info, format!("modifying DB instance {id}"));
        // Checked at once: the answer already lists what is pending, so a change that has not
        // begun yet is never taken for one that has finished.
        Outcome::Running {
            handle: Value::Null,
            check_after: std::time::Duration::ZERO,
        }
    }

    fn outputs(p: &Params, instance: Option<&DbInstance>) -> Map<String, Value> {
        let mut outputs = Map::new();
        outputs.insert("DBInstanceIdentifier".into(), json!(instance_id(p)));
        if let Some(instance) = instance {
            outputs.insert(
                "DBInstanceStatus".into(),
                json!(instance.db_instance_status()),
            );
            outputs.insert("DBInstanceArn".into(), json!(instance.db_instance_arn()));
        }
        outputs
    }

    async fn check(client: &Client, p: &Params, request: &CheckRequest) -> Outcome {
        let id = instance_id(p);
        let described = client
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await;
        let instance = match described {
            Ok(out) => match out.db_instances().first() {
                Some(instance) => instance.clone(),
                None => return Outcome::failed(format!("DB instance {id} does not exist")),
            },
            // A renamed instance answers to its new name only once the rename is done.
            Err(e)
                if p.api_params.new_db_instance_identifier.is_some()
                    && crate::aws::code(&e).as_deref() == Some("DBInstanceNotFound") =>
            {
                return Outcome::Running {
                    handle: request.handle.clone(),
                    check_after: ModifyDbInstance::SPEC.poll_interval,
                };
            }
            Err(e) => return call_failed(&format!("DescribeDBInstances {id}"), &e),
        };
        if request.handle.get("waiting_to_modify").is_some() {
            return match instance.db_instance_status() {
                Some("available") => modify(client, p, &request.log).await,
                Some(status) if failing(status) => Outcome::failed(format!(
                    "DB instance {id} is {status}; it cannot be modified"
                )),
                _ => waiting(),
            };
        }
        settled(p, &instance, &request.log).unwrap_or_else(|| Outcome::Running {
            handle: request.handle.clone(),
            check_after: ModifyDbInstance::SPEC.poll_interval,
        })
    }

    /// Where the instance has got to: `None` while it is still changing.
    fn settled(p: &Params, instance: &DbInstance, log: &LogSink) -> Option<Outcome> {
        let id = instance_id(p);
        let status = instance.db_instance_status().unwrap_or_default();
        let nothing_pending = instance
            .pending_modified_values()
            .is_none_or(|v| *v == PendingModifiedValues::builder().build());
        match status {
            // After a storage change the instance is usable while storage is optimised.
            "available" | "storage-optimization" if nothing_pending => {
                log.send(
                    Level::Info,
                    format!("DB instance {id} is {status} with nothing pending"),
                );
                Some(Outcome::Complete {
                    outputs: outputs(p, Some(instance)),
                })
            }
            status if failing(status) => Some(Outcome::failed(format!(
                "DB instance {id} is {status}; the modification cannot finish"
            ))),
            _ => None,
        }
    }

    /// Statuses an instance does not leave by itself.
    fn failing(status: &str) -> bool {
        matches!(
            status,
            "failed"
                | "incompatible-network"
                | "incompatible-option-group"
                | "incompatible-parameters"
                | "incompatible-restore"
                | "inaccessible-encryption-credentials"
                | "restore-error"
                | "storage-full"
                | "stopped"
                | "deleting"
        )
    }
}
