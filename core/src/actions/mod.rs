//! The action catalogue. Each type lives in one file that owns its params schema, its
//! validation, its behaviour (start, check, cancel) and its own messages and defaults; the
//! `catalogue!` registry below is the only list of types. Adding a type is one new file and
//! one registry line.

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

mod attempt;
pub mod aws;
pub mod command;
pub mod fail;
pub mod no_op;
pub mod set_variables;
pub mod wait;

pub use attempt::{CancelError, CheckRequest, Control, LogSink, Outcome, StartRequest};

/// How an action type runs, which decides what the engine must persist around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Pure and instant: evaluated by the scheduler itself, no IO.
    Inline,
    /// Does IO and finishes within the tick (bounded by the time budget).
    Sync,
    /// Starts work elsewhere and is checked again on later ticks.
    Async,
}

/// What the engine needs to know about a type without running it.
#[derive(Debug)]
pub struct TypeSpec {
    /// The canonical name, e.g. `aws.create_stack`.
    pub name: &'static str,
    /// How it runs.
    pub mode: Mode,
    /// How long to wait before checking a running action again.
    pub poll_interval: Duration,
    /// Whether a running action can be cancelled (abort, timeout).
    pub can_cancel: bool,
    /// Whether running it again after an interruption is harmless regardless of params
    /// (reads, or writes of identical content).
    pub replay_safe: bool,
}

/// A problem with a params object: the path inside `params` (may be empty) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamsProblem {
    /// Where in `params`, e.g. `command[1]`; empty for the object itself.
    pub path: String,
    /// What is wrong, and how to fix it.
    pub message: String,
}

impl ParamsProblem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The problem as an action's failure (params that validated as templates can still
    /// render into something the schema refuses).
    pub(crate) fn into_outcome(self) -> Outcome {
        Outcome::failed(format!("params.{}: {}", self.path, self.message))
    }
}

/// The run as an action type may see it when it fills in defaults before a start.
pub(crate) trait RunView {
    fn run_id(&self) -> &str;
    fn vars(&self) -> &Map<String, Value>;
    /// The outputs of the action's finished ancestors, by label.
    fn ancestor_outputs(&self) -> Map<String, Value>;
}

/// A type's schema and its words: everything that does not run it.
pub(crate) trait Schema {
    const SPEC: TypeSpec;
    type Params: DeserializeOwned + Send;
    /// The baton-core feature a build needs to run this type (AWS types: `aws`, or the
    /// feature of the service they call).
    const FEATURE: &'static str = "aws";

    /// Checks beyond the schema (string fields may still hold templates).
    fn validate(_params: &Self::Params) -> Result<(), ParamsProblem> {
        Ok(())
    }

    /// Fills in defaults that come from the run, on rendered params, before the start.
    fn prepare(params: Value, _run: &dyn RunView) -> Value {
        params
    }

    /// What an abort says about running work of this type that cannot be cancelled.
    fn abort_note() -> String {
        format!(
            "{} cannot be cancelled; the work may still be running",
            Self::SPEC.name
        )
    }
}

/// What a type does when it runs. Inline types implement [`Behaviour::inline`]; the others
/// [`Behaviour::start`] and, when asynchronous, [`Behaviour::check`] (and `cancel` if they can).
pub(crate) trait Behaviour: Schema {
    fn inline(_params: Self::Params) -> Outcome {
        Outcome::failed(format!("{} is not an inline type", Self::SPEC.name))
    }

    fn start(
        _env: &Env,
        params: Self::Params,
        _request: &StartRequest,
    ) -> impl Future<Output = Outcome> + Send {
        async move { Self::inline(params) }
    }

    fn check(
        _env: &Env,
        _params: Self::Params,
        _request: &CheckRequest,
    ) -> impl Future<Output = Outcome> + Send {
        async { Outcome::failed(format!("{} actions are not checked", Self::SPEC.name)) }
    }

    fn cancel(
        _env: &Env,
        _params: Self::Params,
        _request: &CheckRequest,
    ) -> impl Future<Output = Result<(), CancelError>> + Send {
        async {
            Err(CancelError::Unsupported {
                type_name: Self::SPEC.name,
            })
        }
    }
}

/// What actions may reach while they run: AWS access when this process has it, and the local
/// machine (programs, files) unless this process refuses it (the Lambda runner does).
#[derive(Debug, Default, Clone)]
pub(crate) struct Env {
    #[cfg(feature = "aws")]
    aws: Option<std::sync::Arc<crate::aws::Aws>>,
    /// Why `system.command` is refused here, if it is.
    pub(crate) commands_refused: Option<String>,
    /// Why reading local files at start (a `template_file`) is refused here, if it is.
    pub(crate) files_refused: Option<String>,
    /// Where `system.command` runs when not here: ECS tasks.
    #[cfg(feature = "aws-ecs")]
    pub(crate) command_tasks: Option<std::sync::Arc<command::CommandTasks>>,
}

impl Env {
    /// Actions with AWS access.
    #[cfg(feature = "aws")]
    pub(crate) fn with_aws(aws: std::sync::Arc<crate::aws::Aws>) -> Self {
        Env {
            aws: Some(aws),
            ..Env::default()
        }
    }

    /// Whether `system.command` runs as remote tasks here.
    pub(crate) fn sends_commands_elsewhere(&self) -> bool {
        #[cfg(feature = "aws-ecs")]
        return self.command_tasks.is_some();
        #[cfg(not(feature = "aws-ecs"))]
        false
    }

    #[cfg(feature = "aws")]
    pub(crate) fn aws(&self) -> Result<&crate::aws::Aws, Outcome> {
        self.aws
            .as_deref()
            .ok_or_else(|| Outcome::failed("no AWS configuration was given to this baton process"))
    }
}

/// Parses params into a type's schema, reporting the path of the first problem.
pub(crate) fn parse<P: DeserializeOwned>(params: &Value) -> Result<P, ParamsProblem> {
    let empty = Value::Object(Default::default());
    let params = if params.is_null() { &empty } else { params };
    serde_path_to_error::deserialize(params).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        plain_problem(path, &err.into_inner().to_string())
    })
}

fn check_params<K: Schema>(params: &Value) -> Result<(), ParamsProblem> {
    K::validate(&parse::<K::Params>(params)?)
}

fn run_inline<K: Behaviour>(params: &Value) -> Outcome {
    match parse::<K::Params>(params) {
        Ok(params) => K::inline(params),
        Err(problem) => problem.into_outcome(),
    }
}

async fn start<K: Behaviour>(env: &Env, request: &StartRequest) -> Outcome {
    match parse::<K::Params>(&request.params) {
        Ok(params) => K::start(env, params, request).await,
        Err(problem) => problem.into_outcome(),
    }
}

async fn check<K: Behaviour>(env: &Env, request: &CheckRequest) -> Outcome {
    match parse::<K::Params>(&request.params) {
        Ok(params) => K::check(env, params, request).await,
        Err(problem) => problem.into_outcome(),
    }
}

async fn cancel<K: Behaviour>(env: &Env, request: &CheckRequest) -> Result<(), CancelError> {
    match parse::<K::Params>(&request.params) {
        Ok(params) => K::cancel(env, params, request).await,
        Err(problem) => Err(CancelError::Refused(problem.message)),
    }
}

/// AWS types run only in builds with the `aws` feature; elsewhere they fail saying so.
#[cfg(feature = "aws")]
mod with_aws {
    use super::{Behaviour, CancelError, CheckRequest, Env, Outcome, StartRequest};

    pub(super) fn run_inline<K: Behaviour>(params: &serde_json::Value) -> Outcome {
        super::run_inline::<K>(params)
    }
    pub(super) async fn start<K: Behaviour>(env: &Env, request: &StartRequest) -> Outcome {
        super::start::<K>(env, request).await
    }
    pub(super) async fn check<K: Behaviour>(env: &Env, request: &CheckRequest) -> Outcome {
        super::check::<K>(env, request).await
    }
    pub(super) async fn cancel<K: Behaviour>(
        env: &Env,
        request: &CheckRequest,
    ) -> Result<(), CancelError> {
        super::cancel::<K>(env, request).await
    }
}

#[cfg(not(feature = "aws"))]
mod with_aws {
    use super::{CancelError, CheckRequest, Env, Outcome, Schema, StartRequest};

    fn no_aws<K: Schema>() -> Outcome {
        Outcome::failed(format!(
            "{} needs AWS support, which this baton build does not include; \
             install a build with the `{}` feature",
            K::SPEC.name,
            K::FEATURE
        ))
    }
    pub(super) fn run_inline<K: Schema>(_params: &serde_json::Value) -> Outcome {
        no_aws::<K>()
    }
    pub(super) async fn start<K: Schema>(_env: &Env, _request: &StartRequest) -> Outcome {
        no_aws::<K>()
    }
    pub(super) async fn check<K: Schema>(_env: &Env, _request: &CheckRequest) -> Outcome {
        no_aws::<K>()
    }
    pub(super) async fn cancel<K: Schema>(
        _env: &Env,
        _request: &CheckRequest,
    ) -> Result<(), CancelError> {
        Err(CancelError::Refused("no AWS support in this build".into()))
    }
}

/// The registry: `Variant => kind type`, system types first, then types that need AWS.
macro_rules! catalogue {
    (
        system { $($sys:ident => $sys_kind:ty,)* }
        aws { $($aws:ident => $aws_kind:ty,)* }
    ) => {
        /// An action type from the catalogue.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ActionType {
            $(
                #[doc = concat!("See [`", stringify!($sys_kind), "`].")]
                $sys,
            )*
            $(
                #[doc = concat!("See [`", stringify!($aws_kind), "`].")]
                $aws,
            )*
        }

        impl ActionType {
            /// Every type, in catalogue order.
            pub const ALL: &'static [ActionType] = &[$(ActionType::$sys,)* $(ActionType::$aws,)*];

            /// What the engine needs to know about the type.
            pub fn spec(self) -> &'static TypeSpec {
                match self {
                    $(ActionType::$sys => &<$sys_kind as Schema>::SPEC,)*
                    $(ActionType::$aws => &<$aws_kind as Schema>::SPEC,)*
                }
            }

            /// Checks a params object against this type's schema (before templates are
            /// rendered, so string fields may hold templates).
            pub(crate) fn check_params(self, params: &Value) -> Result<(), ParamsProblem> {
                match self {
                    $(ActionType::$sys => check_params::<$sys_kind>(params),)*
                    $(ActionType::$aws => check_params::<$aws_kind>(params),)*
                }
            }

            /// Rendered params with the type's run-dependent defaults filled in.
            pub(crate) fn prepare(self, params: Value, run: &dyn RunView) -> Value {
                match self {
                    $(ActionType::$sys => <$sys_kind as Schema>::prepare(params, run),)*
                    $(ActionType::$aws => <$aws_kind as Schema>::prepare(params, run),)*
                }
            }

            /// What an abort says about running work of this type it cannot cancel.
            pub(crate) fn abort_note(self) -> String {
                match self {
                    $(ActionType::$sys => <$sys_kind as Schema>::abort_note(),)*
                    $(ActionType::$aws => <$aws_kind as Schema>::abort_note(),)*
                }
            }

            /// Runs a pure, instant type (see [`Mode::Inline`]) on rendered params.
            pub(crate) fn run_inline(self, params: &Value) -> Outcome {
                match self {
                    $(ActionType::$sys => run_inline::<$sys_kind>(params),)*
                    $(ActionType::$aws => with_aws::run_inline::<$aws_kind>(params),)*
                }
            }

            pub(crate) async fn start(self, env: &Env, request: &StartRequest) -> Outcome {
                match self {
                    $(ActionType::$sys => start::<$sys_kind>(env, request).await,)*
                    $(ActionType::$aws => with_aws::start::<$aws_kind>(env, request).await,)*
                }
            }

            pub(crate) async fn check(self, env: &Env, request: &CheckRequest) -> Outcome {
                match self {
                    $(ActionType::$sys => check::<$sys_kind>(env, request).await,)*
                    $(ActionType::$aws => with_aws::check::<$aws_kind>(env, request).await,)*
                }
            }

            pub(crate) async fn cancel(
                self,
                env: &Env,
                request: &CheckRequest,
            ) -> Result<(), CancelError> {
                match self {
                    $(ActionType::$sys => cancel::<$sys_kind>(env, request).await,)*
                    $(ActionType::$aws => with_aws::cancel::<$aws_kind>(env, request).await,)*
                }
            }
        }
    };
}

catalogue! {
    system {
        NoOp => no_op::NoOp,
        Wait => wait::Wait,
        SetVariables => set_variables::SetVariables,
        Command => command::Command,
        Fail => fail::Fail,
    }
    aws {
        CreateStack => aws::create_stack::CreateStack,
        DeleteStack => aws::delete_stack::DeleteStack,
        GetStackOutputs => aws::get_stack_outputs::GetStackOutputs,
        UploadContext => aws::upload_context::UploadContext,
        EmptyBucket => aws::empty_bucket::EmptyBucket,
        GetStackReferences => aws::get_stack_references::GetStackReferences,
        CreateChangeSet => aws::create_change_set::CreateChangeSet,
        ApplyChangeSet => aws::apply_change_set::ApplyChangeSet,
        DeleteChangeSet => aws::delete_change_set::DeleteChangeSet,
        CreateGrants => aws::kms_create_grants::CreateGrants,
        CreateImage => aws::create_image::CreateImage,
        CopyImage => aws::copy_image::CopyImage,
        ShareImage => aws::share_image::ShareImage,
        DeleteImage => aws::delete_image::DeleteImage,
        DeleteSecurityGroupEnis => aws::delete_security_group_enis::DeleteSecurityGroupEnis,
        ModifyDbInstance => aws::rds_modify_db_instance::ModifyDbInstance,
        CreateCloudFrontInvalidation => aws::create_cloud_front_invalidation::CreateCloudFrontInvalidation,
        UnprotectElb => aws::unprotect_elb::UnprotectElb,
        CreateUser => aws::create_user::CreateUser,
        DeleteUser => aws::delete_user::DeleteUser,
        RunTask => aws::run_task::RunTask,
    }
}

impl ActionType {
    /// The canonical name, e.g. `aws.create_stack`.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// Accepts the canonical name (`aws.create_stack`), the legacy `AWS::CreateStack` and
    /// `AWS::KMS::CreateGrants` spellings, and a name without its namespace (`create_stack`,
    /// `create-stack`, `kms.create_grants`) when exactly one type has it.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        let canonical = canonical_type_name(name);
        let canonical = TYPE_ALIASES
            .iter()
            .find_map(|(alias, name)| {
                let namespace = canonical.strip_suffix(alias)?;
                (namespace.is_empty() || namespace.ends_with('.'))
                    .then(|| format!("{namespace}{name}"))
            })
            .unwrap_or(canonical);
        if let Some(exact) = Self::ALL.iter().copied().find(|t| t.name() == canonical) {
            return Some(exact);
        }
        let suffix = format!(".{canonical}");
        let mut matches = Self::ALL
            .iter()
            .copied()
            .filter(|t| t.name().ends_with(&suffix));
        let only = matches.next()?;
        matches.next().is_none().then_some(only)
    }

    /// Whether re-running this action after an interrupted attempt is allowed.
    pub(crate) fn may_replay(self, params: &Value) -> bool {
        self.spec().replay_safe
            || params
                .get("idempotent")
                .and_then(Value::as_bool)
                .unwrap_or(false)
    }
}

/// Other names of a type (the part after its namespaces), as other runners spell them.
const TYPE_ALIASES: &[(&str, &str)] = &[
    ("execute_change_set", "apply_change_set"),
    (
        "create_cloudfront_invalidation",
        "create_cloud_front_invalidation",
    ),
];

/// `AWS::CreateStack` → `aws.create_stack`, `AWS::KMS::CreateGrants` → `aws.kms.create_grants`,
/// `UnprotectELB` → `unprotect_elb`, `create-stack` → `create_stack`; canonical names pass
/// through unchanged. Words split where a capital follows a lower-case letter or a digit, as
/// the Simple Cloud Kit runner splits them.
pub(crate) fn canonical_type_name(name: &str) -> String {
    let mut canonical = String::with_capacity(name.len() + 4);
    let mut previous: Option<char> = None;
    let mut rest = name;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("::") {
            canonical.push('.');
            previous = None;
            rest = after;
            continue;
        }
        let Some(c) = rest.chars().next() else { break };
        rest = &rest[c.len_utf8()..];
        if c.is_ascii_uppercase()
            && previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
        {
            canonical.push('_');
        }
        canonical.push(match c {
            '-' => '_',
            c => c.to_ascii_lowercase(),
        });
        previous = Some(c);
    }
    canonical
}

/// Turns serde's wording into baton's: the field goes into the path, names get quotes, and an
/// unknown field gets a suggestion.
fn plain_problem(path: String, message: &str) -> ParamsProblem {
    let join = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    let quoted = |text: &str| text.split('`').nth(1).unwrap_or_default().to_string();
    if let Some(rest) = message.strip_prefix("missing field ") {
        return ParamsProblem::new(join(&quoted(rest)), "missing required field");
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let name = quoted(rest);
        // serde_path_to_error already put the unknown field at the end of the path.
        let join = |name: &str| {
            if path == name || path.ends_with(&format!(".{name}")) {
                path.clone()
            } else {
                join(name)
            }
        };
        if rest.contains("there are no fields") {
            return ParamsProblem::new(join(&name), "unknown field (this type takes no params)");
        }
        let allowed: Vec<String> = rest
            .split_once("expected ")
            .map(|(_, list)| {
                list.split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let hint = crate::hints::did_you_mean(&name, allowed.iter().map(String::as_str))
            .unwrap_or_else(|| format!(" (allowed: {})", allowed.join(", ")));
        return ParamsProblem::new(join(&name), format!("unknown field{hint}"));
    }
    ParamsProblem::new(path, message.replace('`', "\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_kind_names_map_to_canonical() {
        assert_eq!(
            ActionType::from_name("AWS::CreateStack"),
            Some(ActionType::CreateStack)
        );
        assert_eq!(
            ActionType::from_name("SYSTEM::NoOp"),
            Some(ActionType::NoOp)
        );
        assert_eq!(
            ActionType::from_name("system.set_variables"),
            Some(ActionType::SetVariables)
        );
        assert_eq!(
            ActionType::from_name("AWS::GetStackOutputs"),
            Some(ActionType::GetStackOutputs)
        );
        assert_eq!(ActionType::from_name("system.nope"), None);
    }

    #[test]
    fn sck_kind_spellings_map_to_canonical() {
        let cases = [
            ("AWS::KMS::CreateGrants", ActionType::CreateGrants),
            ("aws.kms.create_grants", ActionType::CreateGrants),
            ("kms.create_grants", ActionType::CreateGrants),
            ("create_grants", ActionType::CreateGrants),
            ("AWS::RDS::ModifyDbInstance", ActionType::ModifyDbInstance),
            ("AWS::CreateImage", ActionType::CreateImage),
            ("create_image", ActionType::CreateImage),
            ("create-image", ActionType::CreateImage),
            ("aws.create_image", ActionType::CreateImage),
            ("AWS::UnprotectELB", ActionType::UnprotectElb),
            (
                "AWS::CreateCloudFrontInvalidation",
                ActionType::CreateCloudFrontInvalidation,
            ),
            (
                "create-cloudfront-invalidation",
                ActionType::CreateCloudFrontInvalidation,
            ),
            ("AWS::ApplyChangeSet", ActionType::ApplyChangeSet),
            ("AWS::ExecuteChangeSet", ActionType::ApplyChangeSet),
            ("execute-change-set", ActionType::ApplyChangeSet),
            (
                "AWS::DeleteSecurityGroupEnis",
                ActionType::DeleteSecurityGroupEnis,
            ),
            ("create-stack", ActionType::CreateStack),
            ("create_stack", ActionType::CreateStack),
            ("System::NoOp", ActionType::NoOp),
            ("no-op", ActionType::NoOp),
        ];
        for (name, expected) in cases {
            assert_eq!(ActionType::from_name(name), Some(expected), "{name}");
        }
        assert_eq!(ActionType::from_name("AWS::CreateGrants"), None);
        assert_eq!(ActionType::from_name("image"), None);
    }

    #[test]
    fn canonical_names_split_words_as_sck_does() {
        assert_eq!(
            canonical_type_name("AWS::UnprotectELB"),
            "aws.unprotect_elb"
        );
        assert_eq!(
            canonical_type_name("AWS::KMS::CreateGrants"),
            "aws.kms.create_grants"
        );
        assert_eq!(canonical_type_name("SYSTEM::NoOp"), "system.no_op");
        assert_eq!(
            canonical_type_name("AWS::S3BucketPolicy"),
            "aws.s3_bucket_policy"
        );
        assert_eq!(canonical_type_name("aws.create_stack"), "aws.create_stack");
        for t in ActionType::ALL {
            assert_eq!(canonical_type_name(t.name()), t.name());
        }
    }

    #[test]
    fn no_two_types_share_the_name_after_their_namespace() {
        for t in ActionType::ALL {
            let short = t.name().rsplit('.').next().unwrap_or_default();
            assert_eq!(ActionType::from_name(short), Some(*t), "{short}");
        }
    }

    #[test]
    fn every_type_has_a_unique_name() {
        let mut names: Vec<_> = ActionType::ALL.iter().map(|t| t.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ActionType::ALL.len());
    }
}
