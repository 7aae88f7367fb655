//! Clients of the services only some action types call (EC2, KMS, RDS, CloudFront, ELBv2,
//! IAM, ECS and CloudWatch Logs), each behind its own feature so a build pays only for the services it includes. They
//! share the target's configuration (region, assumed role, endpoint override) with the
//! CloudFormation and S3 clients.

#[cfg(any(
    feature = "aws-ec2",
    feature = "aws-kms",
    feature = "aws-rds",
    feature = "aws-cloudfront",
    feature = "aws-elbv2",
    feature = "aws-iam",
    feature = "aws-ecs"
))]
use super::{Aws, Target};

/// Clients that every target uses instead of its own (tests with mocked SDK clients); `None`
/// (the default) makes each target's client from its configuration.
#[derive(Debug, Clone, Default)]
pub struct Services {
    /// EC2 (images, network interfaces).
    #[cfg(feature = "aws-ec2")]
    pub ec2: Option<aws_sdk_ec2::Client>,
    /// KMS (grants).
    #[cfg(feature = "aws-kms")]
    pub kms: Option<aws_sdk_kms::Client>,
    /// RDS (instance modifications).
    #[cfg(feature = "aws-rds")]
    pub rds: Option<aws_sdk_rds::Client>,
    /// CloudFront (invalidations).
    #[cfg(feature = "aws-cloudfront")]
    pub cloudfront: Option<aws_sdk_cloudfront::Client>,
    /// Elastic Load Balancing v2 (load balancer attributes).
    #[cfg(feature = "aws-elbv2")]
    pub elbv2: Option<aws_sdk_elasticloadbalancingv2::Client>,
    /// IAM (users).
    #[cfg(feature = "aws-iam")]
    pub iam: Option<aws_sdk_iam::Client>,
    /// ECS (tasks).
    #[cfg(feature = "aws-ecs")]
    pub ecs: Option<aws_sdk_ecs::Client>,
    /// CloudWatch Logs (a task's output).
    #[cfg(feature = "aws-ecs")]
    pub logs: Option<aws_sdk_cloudwatchlogs::Client>,
}

/// `Aws::$name(target)`: the pinned client, else one made from the target's configuration.
macro_rules! service_client {
    ($feature:literal, $name:ident, $sdk:ident) => {
        #[cfg(feature = $feature)]
        impl Aws {
            #[doc = concat!("A `", stringify!($sdk), "` client for `target`.")]
            pub(crate) async fn $name(&self, target: &Target) -> $sdk::Client {
                match &self.services.$name {
                    Some(client) => client.clone(),
                    None => $sdk::Client::new(&self.clients(target).await.config),
                }
            }
        }
    };
}

service_client!("aws-ec2", ec2, aws_sdk_ec2);
service_client!("aws-kms", kms, aws_sdk_kms);
service_client!("aws-rds", rds, aws_sdk_rds);
service_client!("aws-cloudfront", cloudfront, aws_sdk_cloudfront);
service_client!("aws-elbv2", elbv2, aws_sdk_elasticloadbalancingv2);
service_client!("aws-iam", iam, aws_sdk_iam);
service_client!("aws-ecs", ecs, aws_sdk_ecs);
service_client!("aws-ecs", logs, aws_sdk_cloudwatchlogs);
