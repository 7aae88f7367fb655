//! `aws.delete_change_set`: deletes a change set that is not wanted; one that does not exist
//! is already deleted.

use std::time::Duration;

use serde::Deserialize;

use super::AccountId;
use crate::actions::{Mode, Schema, TypeSpec};

/// The `aws.delete_change_set` type.
pub struct DeleteChangeSet;

impl Schema for DeleteChangeSet {
    const SPEC: TypeSpec = TypeSpec {
        name: "aws.delete_change_set",
        mode: Mode::Sync,
        poll_interval: Duration::ZERO,
        can_cancel: false,
        replay_safe: true,
    };
    type Params = Params;
}

/// Params of `aws.delete_change_set`.
#[allow(missing_docs)] // CloudFormation's own names
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub stack_name: String,
    pub change_set_name: String,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
}

super::aws_target!(Params);

#[cfg(feature = "aws")]
mod calls {
    use aws_sdk_cloudformation::Client;
    use serde_json::{json, Map};

    use super::{DeleteChangeSet, Params};
    use crate::actions::aws::{call_failed, stacks};
    use crate::actions::{Behaviour, Env, Outcome, StartRequest};
    use crate::log::Level;

    impl Behaviour for DeleteChangeSet {
        async fn start(env: &Env, params: Params, request: &StartRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => start(&aws.cfn(&params.target(aws)).await, &params, request).await,
                Err(outcome) => outcome,
            }
        }
    }

    fn done(result: &str) -> Outcome {
        let mut outputs = Map::new();
        outputs.insert("DeletionResult".into(), json!(result));
        Outcome::Complete { outputs }
    }

    async fn start(client: &Client, p: &Params, request: &StartRequest) -> Outcome {
        let what = format!("change set {} of stack {}", p.change_set_name, p.stack_name);
        // Looked up first: a missing change set is already gone (and some emulators fail
        // deleting one that does not exist).
        match client
            .describe_change_set()
            .change_set_name(&p.change_set_name)
            .stack_name(&p.stack_name)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if stacks::change_set_missing(&e) => {
                request.log.send(
                    Level::Info,
                    format!("{what} does not exist; nothing to delete"),
                );
                return done("NOT_FOUND");
            }
            Err(e) => return call_failed(&format!("DescribeChangeSet {}", p.change_set_name), &e),
        }
        match client
            .delete_change_set()
            .change_set_name(&p.change_set_name)
            .stack_name(&p.stack_name)
            .send()
            .await
        {
            Ok(_) => {
                request.log.send(Level::Info, format!("deleted {what}"));
                done("SUCCESS")
            }
            Err(e) if stacks::change_set_missing(&e) => done("NOT_FOUND"),
            Err(e) => call_failed(&format!("DeleteChangeSet {}", p.change_set_name), &e),
        }
    }
}
