//! The arguments commands take, as clap parses them. The commands depend on these types and
//! [`crate::cli`] dispatches to the commands, so they live apart from both.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// AWS options, as the AWS CLI takes them (the environment and AWS config files work too).
/// Only commands that can reach AWS (an S3 store, `aws.*` actions) take them.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "AWS")]
pub struct AwsArgs {
    /// AWS profile (including SSO profiles) for S3 stores and aws.* actions.
    #[arg(long, env = "AWS_PROFILE")]
    pub profile: Option<String>,
    /// AWS region for calls whose action gives none.
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Send AWS calls to this endpoint (moto, LocalStack).
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Role name assumed in an action's `account` when it gives no `role_arn`.
    #[arg(
        long,
        env = "BATON_ROLE_NAME",
        default_value = DEFAULT_ROLE_NAME,
        value_name = "NAME"
    )]
    pub role_name: String,
}

/// The role name assumed in an action's `account` unless configured otherwise.
pub const DEFAULT_ROLE_NAME: &str = "baton-deployer";

/// Where runs are kept, and how to reach AWS when that is S3 (or actions call AWS).
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Where runs are kept: a folder or s3://bucket/prefix.
    #[arg(
        long,
        env = "BATON_STORE",
        default_value = ".baton",
        value_name = "DIR|S3_URL"
    )]
    pub store: String,
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `submit`'s store: runs it starts live in S3, so there is no local default.
#[derive(Debug, Clone, Args)]
pub struct S3StoreArgs {
    /// Where the run is kept: s3://bucket/prefix (the runner's state bucket); required here,
    /// or from BATON_STORE or the config file.
    #[arg(long, env = "BATON_STORE", value_name = "S3_URL")]
    pub store: Option<String>,
    #[command(flatten)]
    pub aws: AwsArgs,
}

impl S3StoreArgs {
    pub fn as_store_args(&self) -> Result<StoreArgs, crate::Failure> {
        let store = self.store.clone().ok_or_else(|| {
            crate::Failure::Invalid(
                "submit needs the runner's state bucket: --store s3://bucket/prefix (or \
                 BATON_STORE, or `store` in the config file)"
                    .to_string(),
            )
        })?;
        Ok(StoreArgs {
            store,
            aws: self.aws.clone(),
        })
    }
}

/// What a `RUN` argument accepts (shown by `--help`).
pub const RUN_HELP: &str = "The run: its id in the store, `last` (the most recently changed \
     local run), a run folder (.baton/runs/<id>) or an S3 locator (s3://bucket/prefix/runs/<id>)";

/// What a `FILE` argument accepts (shown by `--help`).
pub const FILE_HELP: &str = "An action file: JSON or YAML (.json, .yaml, .yml; other names are \
     read as JSON, then YAML), in baton's format or a Simple Cloud Kit (SCK) one";

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum PlanFormat {
    Text,
    Json,
    Dot,
    Mermaid,
}

#[derive(Debug, Clone, Args)]
pub struct DriveArgs {
    /// Most actions running at once (instant actions do not count).
    #[arg(long)]
    pub max_parallel: Option<usize>,
    /// Plain progress lines, even on a terminal.
    #[arg(long, conflicts_with = "json")]
    pub plain: bool,
    /// Print one JSON summary of the run on stdout at the end, nothing else.
    #[arg(long)]
    pub json: bool,
    /// Seconds per tick before state is checkpointed and a new tick starts.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    pub budget: f64,
    /// Console without re-execute and abort controls.
    #[arg(long)]
    pub read_only: bool,
    /// Drive even though another driver's lease on the run (S3 stores) has not lapsed: only
    /// when that driver is known to be dead (its commands in flight become "interrupted").
    #[arg(long)]
    pub take_over: bool,
}

/// How a new run reads its `template_file`s.
#[derive(Debug, Clone, Args)]
pub struct TemplateArgs {
    /// Read `template_file`s outside the action file's folder too (through `..`, absolute
    /// paths or symlinks); by default they are refused.
    #[arg(long)]
    pub allow_template_outside: bool,
}

impl TemplateArgs {
    pub fn reach(&self) -> crate::templates::TemplateReach {
        if self.allow_template_outside {
            crate::templates::TemplateReach::Anywhere
        } else {
            crate::templates::TemplateReach::BesideActionFile
        }
    }
}

/// `--hooks`: where status hooks are published.
pub const HOOKS_HELP: &str =
    "Publish the actions' status hooks (LifecycleHooks) to sns:<topic ARN> \
or events:<bus name or ARN>; kept with the run, so every driver of it publishes there";

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[arg(help = FILE_HELP)]
    pub file: PathBuf,
    /// A run variable, readable as `vars.NAME` in templates (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Use this run id instead of a generated one.
    #[arg(long)]
    pub run_id: Option<String>,
    #[arg(long, value_name = "SINK", help = HOOKS_HELP)]
    pub hooks: Option<String>,
    #[command(flatten)]
    pub templates: TemplateArgs,
    #[command(flatten)]
    pub drive: DriveArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Clone, Args)]
#[group(id = "selection", required = true, multiple = false)]
pub struct Selection {
    /// Failed, blocked and cancelled actions.
    #[arg(long, group = "selection")]
    pub failed: bool,
    /// This action and everything that depends on it.
    #[arg(long, value_name = "LABEL", group = "selection")]
    pub from: Option<String>,
    /// Only this action.
    #[arg(long, value_name = "LABEL", group = "selection")]
    pub only: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RetryArgs {
    #[arg(help = RUN_HELP)]
    pub run: String,
    #[command(flatten)]
    pub selection: Selection,
    /// Reset only; drive later with `baton resume`.
    #[arg(long)]
    pub no_run: bool,
    #[command(flatten)]
    pub drive: DriveArgs,
    #[command(flatten)]
    pub store: StoreArgs,
}
