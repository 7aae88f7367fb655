//! AWS plumbing for the `aws` feature: configuration from the standard chain (profiles, SSO,
//! environment, `--endpoint-url`), per-region and per-account clients, and error wording.

use std::collections::HashMap;
use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_cloudformation as cfn;
use aws_sdk_s3 as s3;
use tokio::sync::Mutex;

mod publish;
mod services;
pub use services::Services;

/// How to reach AWS, as the AWS CLI takes it.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// Named profile (`--profile`); `None` follows `AWS_PROFILE`, then `default`.
    pub profile: Option<String>,
    /// Default region for actions that name none; `None` takes it from the environment or
    /// profile.
    pub region: Option<String>,
    /// Endpoint override for every service (moto, LocalStack); `None` honours
    /// `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// Role assumed in another account when an action gives `account` but no `role_arn`:
    /// `arn:aws:iam::<account>:role/<role_name>` (default `baton-deployer`).
    pub role_name: Option<String>,
}

/// Where an action's calls go: its region and, for cross-account work, the role to assume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Target {
    /// `None`: the configured default region.
    pub region: Option<String>,
    /// Role to assume for the calls; `None`: the configured credentials as they are.
    pub role_arn: Option<String>,
}

impl Target {
    /// An explicit `role_arn` wins; otherwise an `account` means the role `role_name` in it.
    pub(crate) fn new(
        region: Option<&str>,
        account: Option<&str>,
        role_arn: Option<&str>,
        role_name: &str,
    ) -> Self {
        let role_arn = role_arn
            .map(str::to_string)
            .or_else(|| account.map(|account| format!("arn:aws:iam::{account}:role/{role_name}")));
        Target {
            region: region.map(str::to_string),
            role_arn,
        }
    }
}

/// A hung connection must end the call (and let the SDK retry) rather than hang the tick:
/// each attempt gets `BATON_AWS_ATTEMPT_TIMEOUT_SECONDS` (default 30 s, room for a large state
/// document), connecting gets 5 s.
fn timeouts() -> aws_config::timeout::TimeoutConfig {
    let setting = std::env::var("BATON_AWS_ATTEMPT_TIMEOUT_SECONDS").ok();
    let attempt = setting
        .as_deref()
        .map_or(Ok(DEFAULT_ATTEMPT_TIMEOUT), attempt_timeout)
        .unwrap_or_else(|why| {
            tracing::warn!(
                "BATON_AWS_ATTEMPT_TIMEOUT_SECONDS={:?} {why}; using {} s",
                setting.unwrap_or_default(),
                DEFAULT_ATTEMPT_TIMEOUT.as_secs()
            );
            DEFAULT_ATTEMPT_TIMEOUT
        });
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .operation_attempt_timeout(attempt)
        .build()
}

const DEFAULT_ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A number of seconds, more than zero and at most an hour (a longer attempt would outlast
/// any tick; `1e30` would overflow a `Duration`).
fn attempt_timeout(text: &str) -> Result<std::time::Duration, &'static str> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| "is not a number of seconds")?;
    if !(seconds > 0.0 && seconds <= 3600.0) {
        return Err("is not a number of seconds from 0 to 3600");
    }
    std::time::Duration::try_from_secs_f64(seconds).map_err(|_| "is out of range")
}

/// Attempts per AWS call, the first included: `BATON_AWS_MAX_ATTEMPTS` (default 5). Throttling,
/// 5xx answers, timeouts and dropped connections are retried with jittered backoff.
fn max_attempts() -> u32 {
    std::env::var("BATON_AWS_MAX_ATTEMPTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(5)
}

/// Shared AWS access: the base configuration and a cache of clients per target.
pub struct Aws {
    base: SdkConfig,
    endpoint_url: Option<String>,
    role_name: String,
    clients: Mutex<HashMap<Target, Clients>>,
    /// Tests pin every target to given clients (SDK-level mocks).
    fixed: Option<(cfn::Client, s3::Client)>,
    /// Clients of the other services, pinned the same way.
    #[cfg_attr(not(feature = "sck"), allow(dead_code))]
    services: Services,
}

/// One target's configuration (region, assumed role) and the clients baton-core always uses;
/// the other services' clients are made from the configuration when an action needs one.
#[derive(Clone)]
struct Clients {
    // Read by the other services' clients (services.rs), which a build may leave out.
    #[cfg_attr(not(feature = "sck"), allow(dead_code))]
    config: SdkConfig,
    cfn: cfn::Client,
    s3: s3::Client,
}

impl std::fmt::Debug for Aws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aws")
            .field("region", &self.base.region())
            .field("endpoint_url", &self.endpoint_url)
            .finish()
    }
}

impl Aws {
    /// Loads configuration from the standard chain, honouring explicit settings first.
    pub async fn load(settings: &AwsSettings) -> Arc<Self> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(profile) = &settings.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &settings.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(endpoint) = &settings.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        let base = loader
            .timeout_config(timeouts())
            .retry_config(
                aws_config::retry::RetryConfig::standard().with_max_attempts(max_attempts()),
            )
            .load()
            .await;
        let endpoint_url = settings
            .endpoint_url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
        Arc::new(Aws {
            base,
            endpoint_url,
            role_name: settings
                .role_name
                .clone()
                .unwrap_or_else(|| "baton-deployer".into()),
            clients: Mutex::new(HashMap::new()),
            fixed: None,
            services: Services::default(),
        })
    }

    /// Every target uses these clients (for tests with mocked SDK clients).
    pub fn fixed(cfn: cfn::Client, s3: s3::Client) -> Arc<Self> {
        Self::fixed_with(cfn, s3, Services::default())
    }

    /// Every target uses these clients, and `services`' clients where given.
    pub fn fixed_with(cfn: cfn::Client, s3: s3::Client, services: Services) -> Arc<Self> {
        Arc::new(Aws {
            base: SdkConfig::builder()
                .behavior_version(BehaviorVersion::latest())
                .build(),
            endpoint_url: None,
            role_name: "baton-deployer".into(),
            clients: Mutex::new(HashMap::new()),
            fixed: Some((cfn, s3)),
            services,
        })
    }

    /// The base configuration, for clients of services baton-core does not wrap (Step
    /// Functions in the command line).
    pub fn sdk_config(&self) -> &SdkConfig {
        &self.base
    }

    /// The role assumed in an account named without a `role_arn`.
    pub(crate) fn role_name(&self) -> &str {
        &self.role_name
    }

    /// The endpoint override, if any (moto, LocalStack).
    pub fn endpoint_url(&self) -> Option<&str> {
        self.endpoint_url.as_deref()
    }

    /// The default region from the settings or the standard chain, if any.
    pub fn region(&self) -> Option<String> {
        self.base.region().map(|r| r.to_string())
    }

    async fn clients(&self, target: &Target) -> Clients {
        if let Some((cfn, s3)) = &self.fixed {
            return Clients {
                config: self.base.clone(),
                cfn: cfn.clone(),
                s3: s3.clone(),
            };
        }
        let mut cache = self.clients.lock().await;
        if let Some(clients) = cache.get(target) {
            return clients.clone();
        }
        let mut builder = self.base.to_builder();
        if let Some(region) = &target.region {
            builder = builder.region(aws_config::Region::new(region.clone()));
        }
        if let Some(role_arn) = &target.role_arn {
            let provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
                .session_name("baton")
                .configure(&self.base)
                .build()
                .await;
            let provider = AssumedRole {
                role_arn: role_arn.clone(),
                provider,
            };
            builder = builder.credentials_provider(SharedCredentialsProvider::new(provider));
        }
        let config = builder.build();
        let s3_config = s3::config::Builder::from(&config)
            // Path-style addressing works with every endpoint override (moto, MinIO).
            .force_path_style(self.endpoint_url.is_some())
            .build();
        let clients = Clients {
            cfn: cfn::Client::new(&config),
            s3: s3::Client::from_conf(s3_config),
            config,
        };
        cache.insert(target.clone(), clients.clone());
        clients
    }

    /// A CloudFormation client for `target` (cached; credentials are fetched on first use).
    pub async fn cfn(&self, target: &Target) -> cfn::Client {
        self.clients(target).await.cfn
    }

    /// An S3 client for `target` (cached; credentials are fetched on first use).
    pub async fn s3(&self, target: &Target) -> s3::Client {
        self.clients(target).await.s3
    }
}

/// The role an action's calls are made with: STS's refusal names the role and says why, where
/// the SDK would report a transport error with STS's answer buried in it.
#[derive(Debug)]
struct AssumedRole {
    role_arn: String,
    provider: aws_config::sts::AssumeRoleProvider,
}

impl aws_credential_types::provider::ProvideCredentials for AssumedRole {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            self.provider.provide_credentials().await.map_err(|err| {
                aws_credential_types::provider::error::CredentialsError::provider_error(
                    RoleRefused::from_error(&self.role_arn, &err),
                )
            })
        })
    }
}

/// STS would not give credentials for a role.
#[derive(Debug)]
struct RoleRefused {
    role_arn: String,
    /// STS's `Code: message`, or what went wrong on the way.
    words: String,
    retryable: bool,
}

impl RoleRefused {
    fn from_error(role_arn: &str, err: &(dyn std::error::Error + 'static)) -> Self {
        type AssumeRoleFailure = aws_smithy_runtime_api::client::result::SdkError<
            aws_sdk_sts::operation::assume_role::AssumeRoleError,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >;
        let sts = std::iter::successors(Some(err), |e| e.source())
            .find_map(|e| e.downcast_ref::<AssumeRoleFailure>());
        let (words, retryable) = match sts {
            Some(sts) => (sts_words(sts), retryable(sts)),
            None => (crate::util::error_chain(err), true),
        };
        RoleRefused {
            role_arn: role_arn.to_string(),
            words,
            retryable,
        }
    }
}

impl std::fmt::Display for RoleRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot assume role {} (sts:AssumeRole): {}",
            self.role_arn, self.words
        )
    }
}

impl std::error::Error for RoleRefused {}

/// STS's words, also when an emulator's error document is not the one the SDK parses: the
/// `<Code>` and `<Message>` of the raw answer.
fn sts_words<E, R>(err: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> String
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    if let SdkError::ServiceError(service) = err {
        if service.err().code().is_none() {
            let body = format!("{:?}", service.raw());
            let field = |name: &str| {
                let open = format!("<{name}>");
                let start = body.find(&open)? + open.len();
                let end = body[start..].find(&format!("</{name}>"))?;
                Some(body[start..start + end].to_string())
            };
            if let (Some(code), Some(message)) = (field("Code"), field("Message")) {
                return format!("{code}: {message}");
            }
        }
    }
    describe(err)
}

/// A credentials failure somewhere in `err`'s causes: a role STS refused.
fn role_refused<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a RoleRefused> {
    std::iter::successors(Some(err), |e| e.source()).find_map(|e| e.downcast_ref::<RoleRefused>())
}

/// The service's own words for an SDK error: `Code: message`, or the transport problem.
pub fn describe<E, R>(err: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> String
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            match (e.code(), e.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(code), None) => code.to_string(),
                _ => crate::util::error_chain(e),
            }
        }
        SdkError::TimeoutError(_) => "the request timed out".into(),
        SdkError::DispatchFailure(failure) => match failure.as_connector_error() {
            Some(e) if role_refused(e).is_some() => {
                role_refused(e).map(ToString::to_string).unwrap_or_default()
            }
            Some(e) => format!("cannot reach AWS: {}", crate::util::error_chain(e)),
            None => format!("cannot reach AWS: {failure:?}"),
        },
        other => crate::util::error_chain(other),
    }
}

/// The error code of an SDK error (`ValidationError`, `PreconditionFailed`, …).
pub fn code<E, R>(err: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> Option<String>
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .map(str::to_string)
}

/// Whether a failure may pass if tried again later (throttling, 5xx, network).
pub fn retryable<E, R>(err: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> bool
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    match err {
        SdkError::DispatchFailure(failure) => failure
            .as_connector_error()
            .and_then(|e| role_refused(e))
            .is_none_or(|refused| refused.retryable),
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(_) => matches!(
            code(err).as_deref(),
            Some(
                "Throttling"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "SlowDown"
                    | "InternalError"
                    | "ServiceUnavailable"
            )
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_timeouts_out_of_range_are_refused_not_a_panic() {
        assert_eq!(
            attempt_timeout("12.5"),
            Ok(std::time::Duration::from_millis(12_500))
        );
        for bad in ["1e30", "inf", "NaN", "-1", "0", "3601", "x", ""] {
            assert!(attempt_timeout(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_name_the_role_to_assume() {
        let account = "000000012345";
        let t = Target::new(Some("eu-west-1"), Some(account), None, "baton-deployer");
        assert_eq!(
            t.role_arn.as_deref(),
            Some("arn:aws:iam::000000012345:role/baton-deployer")
        );
        assert_eq!(t.region.as_deref(), Some("eu-west-1"));
        let explicit = Target::new(
            None,
            Some(account),
            Some("arn:aws:iam::1:role/x"),
            "ignored",
        );
        assert_eq!(explicit.role_arn.as_deref(), Some("arn:aws:iam::1:role/x"));
        assert_eq!(Target::new(None, None, None, "r"), Target::default());
    }
}
