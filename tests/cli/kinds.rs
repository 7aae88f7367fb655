//! The kinds Simple Cloud Kit action files use beyond stacks and S3 (images, network
//! interfaces, KMS grants, RDS, CloudFront, load balancers, IAM users, stack references,
//! change sets): each against moto (started by scripts/test) through the standard executor —
//! start, check until done, a replayed start that does nothing twice, a failure with a clear
//! error — one run of them all through `baton`, and SDK-level mocks for the states moto never
//! shows (an image pending, an invalidation in progress, an instance modifying).

use aws_sdk_cloudformation as cfn;
use aws_sdk_ec2 as ec2;
use baton_core::actions::{CheckRequest, Control, LogSink, Outcome, StartRequest};
use baton_core::{ActionType, Executor, StandardExecutor};
use serde_json::{json, Value};

use crate::common::*;
use crate::moto::*;

fn start_request(action_type: ActionType, label: &str, params: Value) -> StartRequest {
    StartRequest {
        run_id: unique("kinds"),
        label: label.into(),
        action_type,
        params,
        attempt: 1,
        limit: None,
        log: LogSink::discard(),
        control: Control::none(),
    }
}

fn check_request(start: &StartRequest, handle: Value) -> CheckRequest {
    CheckRequest {
        run_id: start.run_id.clone(),
        label: start.label.clone(),
        action_type: start.action_type,
        params: start.params.clone(),
        handle,
        attempt: start.attempt,
        log: LogSink::discard(),
    }
}

/// Starts an action and checks it until it ends (poll intervals are not waited out).
async fn drive(exec: &StandardExecutor, request: &StartRequest) -> Outcome {
    let mut outcome = exec.start(request.clone()).await;
    for _ in 0..20 {
        let Outcome::Running { handle, .. } = &outcome else {
            return outcome;
        };
        outcome = exec.check(check_request(request, handle.clone())).await;
    }
    panic!(
        "{:?} still running after 20 checks: {outcome:?}",
        request.action_type
    )
}

fn outputs(outcome: &Outcome) -> &serde_json::Map<String, Value> {
    match outcome {
        Outcome::Complete { outputs } => outputs,
        other => panic!("expected completion, got {other:?}"),
    }
}

fn error(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Failed { error, .. } => error,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn moto_exec(endpoint: &str) -> StandardExecutor {
    StandardExecutor::with_aws(moto_aws(endpoint))
}

// ---- EC2 images, against moto ----

/// An instance to make images of.
async fn instance(client: &ec2::Client) -> String {
    let ami = client
        .describe_images()
        .owners("amazon")
        .send()
        .await
        .expect("moto's images")
        .images()
        .first()
        .and_then(|i| i.image_id().map(str::to_string))
        .expect("an image to launch");
    client
        .run_instances()
        .image_id(ami)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .expect("run instance")
        .instances()
        .first()
        .and_then(|i| i.instance_id().map(str::to_string))
        .expect("instance id")
}

async fn images_named(client: &ec2::Client, name: &str) -> Vec<ec2::types::Image> {
    client
        .describe_images()
        .owners("self")
        .filters(
            ec2::types::Filter::builder()
                .name("name")
                .values(name)
                .build(),
        )
        .send()
        .await
        .expect("describe images")
        .images()
        .to_vec()
}

#[test]
fn images_are_made_copied_shared_and_deleted_once_each() {
    let Some(endpoint) = endpoint() else { return };
    rt().block_on(async {
        let client = ec2_client(&endpoint);
        let exec = moto_exec(&endpoint);
        let instance = instance(&client).await;
        let (name, copy_name) = (unique("img"), unique("img-enc"));

        let create = start_request(
            ActionType::CreateImage,
            "bake",
            json!({"image_name": name, "instance_id": instance, "tags": {"App": "web"}}),
        );
        let made = drive(&exec, &create).await;
        let image_id = outputs(&made)["ImageId"].as_str().expect("ImageId").to_string();
        assert_eq!(outputs(&made)["ImageState"], "available");
        assert_eq!(outputs(&made)["SourceInstanceId"], instance.as_str());
        // A replayed start follows the image it made; nothing is made twice.
        assert_eq!(drive(&exec, &create).await, made);
        let found = images_named(&client, &name).await;
        assert_eq!(found.len(), 1);
        let tags: Vec<_> = found[0].tags().iter().map(|t| (t.key(), t.value())).collect();
        assert!(tags.contains(&(Some("App"), Some("web"))), "{tags:?}");
        // Another attempt (or anyone else) may not take the name.
        let mut other = create.clone();
        other.attempt = 2;
        let taken = exec.start(other).await;
        assert!(error(&taken).contains(&format!("an image named {name} already exists ({image_id}")), "{taken:?}");
        // An instance that does not exist: EC2's own words, with the call.
        let missing = start_request(
            ActionType::CreateImage,
            "bad",
            json!({"image_name": unique("img"), "instance_id": "i-0123456789abcdef0"}),
        );
        let failed = exec.start(missing).await;
        assert!(error(&failed).starts_with("CreateImage "), "{failed:?}");
        assert!(error(&failed).contains("InvalidInstanceID.NotFound"), "{failed:?}");

        let copy = start_request(
            ActionType::CopyImage,
            "encrypt",
            json!({"image_name": name, "destination_image_name": copy_name, "tags": {"App": "web"}}),
        );
        let copied = drive(&exec, &copy).await;
        let copy_id = outputs(&copied)["ImageId"].as_str().expect("copy id").to_string();
        assert_eq!(outputs(&copied)["SourceImageId"], image_id.as_str());
        assert_eq!(outputs(&copied)["DestinationImageId"], copy_id.as_str());
        assert_eq!(drive(&exec, &copy).await, copied);
        assert_eq!(images_named(&client, &copy_name).await.len(), 1);
        let no_source = start_request(
            ActionType::CopyImage,
            "bad-copy",
            json!({"image_name": unique("none"), "destination_image_name": unique("x")}),
        );
        let failed = exec.start(no_source).await;
        assert!(error(&failed).contains("no image named"), "{failed:?}");
        // A copy that is cancelled (abort, timeout) is deregistered, which stops EC2 copying.
        let doomed_name = unique("img-doomed");
        let doomed = start_request(
            ActionType::CopyImage,
            "doomed",
            json!({"image_name": name, "destination_image_name": doomed_name}),
        );
        let Outcome::Running { handle, .. } = exec.start(doomed.clone()).await else {
            panic!("the copy did not start")
        };
        assert_eq!(images_named(&client, &doomed_name).await.len(), 1);
        exec.cancel(check_request(&doomed, handle.clone())).await.expect("cancelled");
        assert!(images_named(&client, &doomed_name).await.is_empty());
        // Cancelling again (a replayed tick) finds nothing left to stop.
        exec.cancel(check_request(&doomed, handle)).await.expect("cancelled twice");

        let share = start_request(
            ActionType::ShareImage,
            "share",
            json!({"image_name": name, "accounts_to_share": ["111111111111"], "siblings": ["111111111111", 222222222222u64]}),
        );
        for _ in 0..2 {
            let shared = drive(&exec, &share).await;
            assert_eq!(outputs(&shared)["SharedAccounts"], json!(["111111111111"]));
        }
        let permissions = client
            .describe_image_attribute()
            .image_id(&image_id)
            .attribute(ec2::types::ImageAttributeName::LaunchPermission)
            .send()
            .await
            .expect("launch permissions");
        let users: Vec<_> = permissions.launch_permissions().iter().filter_map(|p| p.user_id()).collect();
        assert_eq!(users, ["111111111111"]);
        let stranger = start_request(
            ActionType::ShareImage,
            "share-out",
            json!({"image_name": name, "accounts_to_share": ["333333333333"], "siblings": ["111111111111"]}),
        );
        let refused = exec.start(stranger).await;
        assert!(error(&refused).contains("333333333333") && error(&refused).contains("siblings"), "{refused:?}");

        for image in [&copy_name, &name] {
            let delete = start_request(ActionType::DeleteImage, "delete", json!({"image_name": image}));
            let deleted = drive(&exec, &delete).await;
            assert_eq!(outputs(&deleted)["DeletionResult"], "SUCCESS");
            let snapshots = outputs(&deleted)["SnapshotIds"].as_array().expect("snapshots").clone();
            assert!(!snapshots.is_empty());
            for snapshot in snapshots {
                let gone = client.describe_snapshots().snapshot_ids(snapshot.as_str().unwrap_or_default()).send().await;
                assert!(gone.is_err() || gone.is_ok_and(|out| out.snapshots().is_empty()), "{snapshot} is left");
            }
            assert!(images_named(&client, image).await.is_empty());
            // Replayed: already gone.
            assert_eq!(outputs(&drive(&exec, &delete).await)["DeletionResult"], "NOT_FOUND");
        }
        let empty = start_request(ActionType::DeleteImage, "delete", json!({"image_name": " "}));
        assert_eq!(error(&exec.start(empty).await), "params.image_name: is empty");
    });
}

/// A security group with two network interfaces, one of them attached to an instance.
async fn group_with_interfaces(client: &ec2::Client, octet: u8) -> (String, Vec<String>) {
    let vpc = client
        .create_vpc()
        .cidr_block(format!("10.{octet}.0.0/16"))
        .send()
        .await
        .expect("vpc");
    let vpc = vpc
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("vpc id")
        .to_string();
    let subnet = client
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block(format!("10.{octet}.0.0/24"))
        .send()
        .await
        .expect("subnet");
    let subnet = subnet
        .subnet()
        .and_then(|s| s.subnet_id())
        .expect("subnet id")
        .to_string();
    let group = client
        .create_security_group()
        .group_name(unique("sg"))
        .description("lambda")
        .vpc_id(&vpc)
        .send()
        .await
        .expect("group")
        .group_id()
        .expect("group id")
        .to_string();
    let mut interfaces = Vec::new();
    for _ in 0..2 {
        let eni = client
            .create_network_interface()
            .subnet_id(&subnet)
            .groups(&group)
            .send()
            .await
            .expect("eni");
        interfaces.push(
            eni.network_interface()
                .and_then(|n| n.network_interface_id())
                .expect("eni id")
                .to_string(),
        );
    }
    let host = instance(client).await;
    client
        .attach_network_interface()
        .network_interface_id(&interfaces[0])
        .instance_id(&host)
        .device_index(1)
        .send()
        .await
        .expect("attach");
    interfaces.sort();
    (group, interfaces)
}

async fn interfaces_of(client: &ec2::Client, group: &str) -> usize {
    let left = client
        .describe_network_interfaces()
        .filters(
            ec2::types::Filter::builder()
                .name("group-id")
                .values(group)
                .build(),
        )
        .send()
        .await
        .expect("describe");
    left.network_interfaces().len()
}

#[test]
fn a_security_groups_interfaces_are_detached_and_deleted() {
    let Some(endpoint) = endpoint() else { return };
    rt().block_on(async {
        let client = ec2_client(&endpoint);
        let exec = moto_exec(&endpoint);
        let (group, interfaces) = group_with_interfaces(&client, 9).await;

        let delete = start_request(
            ActionType::DeleteSecurityGroupEnis,
            "enis",
            json!({"security_group_id": group}),
        );
        let done = drive(&exec, &delete).await;
        let mut deleted: Vec<String> =
            serde_json::from_value(outputs(&done)["DeletedEnis"].clone()).expect("ids");
        deleted.sort();
        assert_eq!(deleted, interfaces);
        assert_eq!(interfaces_of(&client, &group).await, 0);
        // Replayed: nothing left to do.
        assert_eq!(
            outputs(&drive(&exec, &delete).await)["DeletedEnis"],
            json!([])
        );
        let empty = start_request(
            ActionType::DeleteSecurityGroupEnis,
            "enis",
            json!({"security_group_id": ""}),
        );
        assert_eq!(
            error(&exec.start(empty).await),
            "params.security_group_id: is empty"
        );
    });
}

// ---- KMS, RDS, CloudFront, ELBv2, IAM, against moto ----

#[test]
fn kms_grants_are_created_once_per_principal() {
    let Some(endpoint) = endpoint() else { return };
    rt().block_on(async {
        let kms = kms_client(&endpoint);
        let exec = moto_exec(&endpoint);
        let key = kms.create_key().send().await.expect("key");
        let key = key.key_metadata().map(|m| m.arn().unwrap_or_default().to_string()).expect("key arn");
        let principals = [
            "arn:aws:iam::123456789012:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS",
            "arn:aws:iam::123456789012:role/aws-service-role/rds.amazonaws.com/AWSServiceRoleForRDS",
        ];
        let grant = start_request(
            ActionType::CreateGrants,
            "grants",
            json!({"kms_key_arn": key, "grantee_principals": principals, "operations": ["Encrypt", "Decrypt", "DescribeKey"], "ignore_failed_grants": "True"}),
        );
        let first = drive(&exec, &grant).await;
        assert_eq!(outputs(&first)["TotalGrantsCreated"], 2);
        let replayed = drive(&exec, &grant).await;
        assert_eq!(outputs(&replayed)["TotalGrantsCreated"], 0);
        assert_eq!(outputs(&replayed)["GrantIds"], outputs(&first)["GrantIds"]);
        let grants = kms.list_grants().key_id(&key).send().await.expect("grants");
        assert_eq!(grants.grants().len(), 2);
        // Named after the principal, with what KMS refuses in names ('.') as '-'.
        let names: Vec<_> = grants.grants().iter().filter_map(|g| g.name()).collect();
        assert!(names.contains(&principals[0].replace('.', "-").as_str()), "{names:?}");
        // Other operations for a principal are another grant.
        let mut more = grant.clone();
        more.params["operations"] = json!(["Encrypt"]);
        assert_eq!(outputs(&drive(&exec, &more).await)["TotalGrantsCreated"], 2);
        let empty = start_request(
            ActionType::CreateGrants,
            "grants",
            json!({"kms_key_arn": "", "grantee_principals": principals, "operations": ["Encrypt"]}),
        );
        assert_eq!(error(&exec.start(empty).await), "params.kms_key_arn: is empty");
        let flag = start_request(
            ActionType::CreateGrants,
            "grants",
            json!({"kms_key_arn": key, "grantee_principals": principals, "operations": ["Encrypt"], "ignore_failed_grants": "perhaps"}),
        );
        assert_eq!(error(&exec.start(flag).await), "params.ignore_failed_grants: \"perhaps\" is neither true nor false");
    });
}

#[test]
fn an_rds_instance_is_modified_and_followed_until_available() {
    let Some(endpoint) = endpoint() else { return };
    rt().block_on(async {
        let rds = rds_client(&endpoint);
        let exec = moto_exec(&endpoint);
        let db = unique("db");
        rds.create_db_instance()
            .db_instance_identifier(&db)
            .db_instance_class("db.t3.micro")
            .engine("mysql")
            .master_username("admin")
            .master_user_password("not-a-secret-1")
            .allocated_storage(20)
            .send()
            .await
            .expect("db instance");
        let modify = start_request(
            ActionType::ModifyDbInstance,
            "logs",
            json!({"api_params": {
                "ApplyImmediately": true,
                "DBInstanceIdentifier": db,
                "CloudwatchLogsExportConfiguration": {"EnableLogTypes": ["audit", "error"]},
                "DeletionProtection": false
            }}),
        );
        for _ in 0..2 {
            let done = drive(&exec, &modify).await;
            assert_eq!(outputs(&done)["DBInstanceIdentifier"], db.as_str());
            assert_eq!(outputs(&done)["DBInstanceStatus"], "available");
        }
        let described = rds.describe_db_instances().db_instance_identifier(&db).send().await.expect("describe");
        let exports = described.db_instances()[0].enabled_cloudwatch_logs_exports().to_vec();
        assert_eq!(exports, ["audit", "error"]);
        let missing = start_request(
            ActionType::ModifyDbInstance,
            "logs",
            json!({"api_params": {"ApplyImmediately": true, "DBInstanceIdentifier": unique("nodb")}}),
        );
        let failed = exec.start(missing).await;
        assert!(error(&failed).starts_with("ModifyDBInstance "), "{failed:?}");
        assert!(error(&failed).contains("DBInstanceNotFound"), "{failed:?}");
    });
}

#[test]
fn a_cloudfront_invalidation_is_made_once_and_followed() {
    let Some(endpoint) = endpoint() else { return };
    rt().block_on(async {
        let client = cloudfront_client(&endpoint);
        let exec = moto_exec(&endpoint);
        let distribution = distribution(&endpoint).await;

        let invalidate = start_request(
            ActionType::CreateCloudFrontInvalidation,
            "invalidate",
            json!({"distribution_id": distribution, "paths": ["/*"]}),
        );
        let done = drive(&exec, &invalidate).await;
        assert!(outputs(&done)["InvalidationStatus"]
            .as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("completed")));
        assert_eq!(drive(&exec, &invalidate).await, done);
        let listed = client
            .list_invalidations()
            .distribution_id(&distribution)
            .send()
            .await
            .expect("list");
        assert_eq!(listed.invalidation_list().map(|l| l.items().len()), Some(1));
        let nowhere = start_request(
            ActionType::CreateCloudFrontInvalidation,
            "invalidate",
            json!({"distribution_id": "E0000000000000", "paths": ["/*"]}),
        );
        let failed = exec.start(nowhere).await;
        assert!(error(&failed).contains("NoSuchDistribution"), "{failed:?}");
    });
}

/// An application load balancer with deletion protection on.
async fn protected_load_balancer(endpoint: &str, octet: u8) -> String {
    use aws_sdk_elasticloadbalancingv2::types::LoadBalancerAttribute;
    let ec2 = ec2_client(endpoint);
    let elb = elbv2_client(endpoint);
    let vpc = ec2
        .create_vpc()
        .cidr_block(format!("10.{octet}.0.0/16"))
        .send()
        .await
        .expect("vpc");
    let vpc = vpc
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("vpc id")
        .to_string();
    let mut subnets = Vec::new();
    for (i, zone) in ["us-east-1a", "us-east-1b"].iter().enumerate() {
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!("10.{octet}.{i}.0/24"))
            .availability_zone(*zone)
            .send()
            .await
            .expect("subnet");
        subnets.push(
            subnet
                .subnet()
                .and_then(|s| s.subnet_id())
                .expect("subnet id")
                .to_string(),
        );
    }
    let name: String = unique("lb").replace('_', "-").chars().take(32).collect();
    let lb = elb
        .create_load_balancer()
        .name(name.trim_end_matches('-'))
        .set_subnets(Some(subnets))
        .send()
        .await
        .expect("load balancer");
    let arn = lb.load_balancers()[0]
        .load_balancer_arn()
        .expect("arn")
        .to_string();
    let protect = LoadBalancerAttribute::builder()
        .key("deletion_protection.enabled")
        .value("true")
        .build();
    elb.modify_load_balancer_attributes()
        .load_balancer_arn(&arn)
        .attributes(protect)
        .send()
        .await
        .expect("protect");
    arn
}

async fn deletion_protection(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    arn: &str,
) -> Option<String> {
    let attributes = elb
        .describe_load_balancer_attributes()
        .load_balancer_arn(arn)
        .send()
        .await
        .expect("attributes");
    let protection = attributes
        .attributes()
        .iter()
        .find(|a| a.key() == Some("deletion_protection.enabled"));
    protection.and_then(|a| a.value()).map(str::to_string)
}

#[test]
fn a_load_balancer_loses_its_deletion_protection() {
    let Some(endpoint) = endpoint() else { return };
    rt().block_on(async {
        let elb = elbv2_client(&endpoint);
        let exec = moto_exec(&endpoint);
        let arn = protected_load_balancer(&endpoint, 8).await;
        assert_eq!(
            deletion_protection(&elb, &arn).await.as_deref(),
            Some("true")
        );

        let unprotect = start_request(
            ActionType::UnprotectElb,
            "unprotect",
            json!({"load_balancer": arn}),
        );
        for _ in 0..2 {
            assert_eq!(
                outputs(&drive(&exec, &unprotect).await)["DeletionProtection"],
                "false"
            );
        }
        assert_eq!(
            deletion_protection(&elb, &arn).await.as_deref(),
            Some("false")
        );
        let none = start_request(
            ActionType::UnprotectElb,
            "unprotect",
            json!({"load_balancer": "None"}),
        );
        assert_eq!(drive(&exec, &none).await, Outcome::complete());
        let gone = arn.replace("/app/", "/app/gone-");
        let gone = start_request(
            ActionType::UnprotectElb,
            "unprotect",
            json!({"load_balancer": gone}),
        );
        assert!(matches!(
            drive(&exec, &gone).await,
            Outcome::Complete { .. }
        ));
        let empty = start_request(
            ActionType::UnprotectElb,
            "unprotect",
            json!({"load_balancer": ""}),
        );
        assert_eq!(
            error(&exec.start(empty).await),
            "params.load_balancer: is empty"
        );
    });
}

async fn user_policy(iam: &aws_sdk_iam::Client, user: &str) -> Value {
    let policy = iam
        .get_user_policy()
        .user_name(user)
        .policy_name(format!("{user}-AssumeRoles-Policy"))
        .send()
        .await
        .expect("policy");
    // IAM hands the document back URL-encoded.
    let text = policy.policy_document();
    let mut bytes = Vec::new();
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        let hex = tail
            .get(..2)
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (b, hex) {
            (b'%', Some(decoded)) => {
                bytes.push(decoded);
                rest = &tail[2..];
            }
            _ => {
                bytes.push(b);
                rest = tail;
            }
        }
    }
    serde_json::from_slice(&bytes).expect("policy JSON")
}

#[test]
fn iam_users_are_created_with_their_roles_and_deleted_with_everything() {
    let Some(endpoint) = endpoint() else { return };
    rt().block_on(async {
        let iam = iam_client(&endpoint);
        let exec = moto_exec(&endpoint);
        let (alice, bob) = (unique("alice"), unique("bob"));
        // Bob exists, with a statement of his own in the policy.
        iam.create_user().user_name(&bob).send().await.expect("bob");
        let own = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"},
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": ["arn:aws:iam::123456789012:role/old"]}
        ]});
        iam.put_user_policy().user_name(&bob).policy_name(format!("{bob}-AssumeRoles-Policy")).policy_document(own.to_string()).send().await.expect("policy");

        let create = start_request(
            ActionType::CreateUser,
            "users",
            json!({"user_names": [alice], "user_name": bob, "roles": ["deployer", "arn:aws:iam::210987654321:role/reader"], "account": "123456789012"}),
        );
        let made = drive(&exec, &create).await;
        assert_eq!(outputs(&made)["CreatedUsers"], json!([alice]));
        assert_eq!(outputs(&made)["SkippedUsers"], json!([bob]));
        let roles = json!(["arn:aws:iam::123456789012:role/deployer", "arn:aws:iam::210987654321:role/reader"]);
        assert_eq!(user_policy(&iam, &alice).await["Statement"][0]["Resource"], roles);
        let bobs = user_policy(&iam, &bob).await;
        assert_eq!(bobs["Statement"][0], own["Statement"][0]);
        assert_eq!(bobs["Statement"][1]["Resource"], roles);
        // Replayed: both exist, the policies say the same.
        let replayed = drive(&exec, &create).await;
        assert_eq!(outputs(&replayed)["SkippedUsers"], json!([alice, bob]));
        assert_eq!(user_policy(&iam, &bob).await, bobs);
        let no_account = start_request(ActionType::CreateUser, "users", json!({"user_name": alice, "roles": "deployer"}));
        let refused = exec.start(no_account).await;
        assert!(error(&refused).contains("\"deployer\" is a role name; give account"), "{refused:?}");

        // What IAM wants gone before a user goes.
        iam.create_access_key().user_name(&alice).send().await.expect("key");
        iam.create_login_profile().user_name(&alice).password("not-a-secret-1!").send().await.expect("password");
        let group = unique("group");
        iam.create_group().group_name(&group).send().await.expect("group");
        iam.add_user_to_group().group_name(&group).user_name(&alice).send().await.expect("member");
        let managed = iam
            .create_policy()
            .policy_name(unique("read"))
            .policy_document(json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}).to_string())
            .send()
            .await
            .expect("managed policy");
        let managed = managed.policy().and_then(|p| p.arn()).expect("policy arn").to_string();
        iam.attach_user_policy().user_name(&alice).policy_arn(&managed).send().await.expect("attach");
        let delete = start_request(ActionType::DeleteUser, "users", json!({"user_names": [alice, bob]}));
        let deleted = drive(&exec, &delete).await;
        assert_eq!(outputs(&deleted)["DeletedUsers"], json!([alice, bob]));
        for user in [&alice, &bob] {
            assert!(iam.get_user().user_name(user).send().await.is_err(), "{user} is left");
        }
        let replayed = drive(&exec, &delete).await;
        assert_eq!(outputs(&replayed)["SkippedUsers"], json!([alice, bob]));
    });
}

// ---- CloudFormation: references and change sets, against moto ----

const EXPORTING: &str = r#"{"Resources": {"Q": {"Type": "AWS::SQS::Queue"}},
  "Outputs": {"Name": {"Value": {"Fn::GetAtt": ["Q", "QueueName"]}, "Export": {"Name": "EXPORT"}}}}"#;

fn importing(export: &str) -> String {
    json!({"Resources": {"T": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": {"Fn::ImportValue": export}}}}}).to_string()
}

#[test]
fn stack_references_count_the_stacks_importing_an_output() {
    let Some(endpoint) = endpoint() else { return };
    rt().block_on(async {
        let client = cfn_client(&endpoint);
        let exec = moto_exec(&endpoint);
        let (resources, user) = (unique("res"), unique("user"));
        let export = format!("{resources}:Name");
        client
            .create_stack()
            .stack_name(&resources)
            .template_body(EXPORTING.replace("EXPORT", &export))
            .send()
            .await
            .expect("resources");
        let references = start_request(
            ActionType::GetStackReferences,
            "refs",
            json!({"stack_name": resources, "output_name": "Name"}),
        );
        let unused = drive(&exec, &references).await;
        assert_eq!(outputs(&unused)["NumReferences"], 0);
        assert_eq!(outputs(&unused)["ExportName"], export.as_str());
        client
            .create_stack()
            .stack_name(&user)
            .template_body(importing(&export))
            .send()
            .await
            .expect("user");
        let used = drive(&exec, &references).await;
        assert_eq!(outputs(&used)["NumReferences"], 1);
        assert_eq!(outputs(&used)["HasReferences"], true);
        assert_eq!(outputs(&used)["References"], json!([user]));
        let absent = start_request(
            ActionType::GetStackReferences,
            "refs",
            json!({"stack_name": unique("none"), "output_name": "Name"}),
        );
        assert_eq!(outputs(&drive(&exec, &absent).await)["NumReferences"], 0);
    });
}

async fn stacks_named(client: &cfn::Client, name: &str) -> usize {
    let listed = client.list_stacks().send().await.expect("list stacks");
    listed
        .stack_summaries()
        .iter()
        .filter(|s| {
            s.stack_name() == Some(name)
                && s.stack_status() != Some(&cfn::types::StackStatus::DeleteComplete)
        })
        .count()
}

#[test]
fn a_change_set_is_created_applied_and_deleted_once() {
    let Some(endpoint) = endpoint() else { return };
    rt().block_on(async {
        let client = cfn_client(&endpoint);
        let exec = moto_exec(&endpoint);
        let stack = unique("cs");
        let body = EXPORTING.replace("EXPORT", &format!("{stack}:Name"));
        let create = start_request(
            ActionType::CreateChangeSet,
            "plan",
            json!({"stack_name": stack, "change_set_name": "first", "template_body": body, "stack_parameters": {}, "tags": {"App": "web"}}),
        );
        let made = drive(&exec, &create).await;
        assert_eq!(outputs(&made)["ChangesCount"], 1);
        assert_eq!(outputs(&made)["ChangeSetName"], "first");
        // Replayed: the same change set, no second stack.
        assert_eq!(drive(&exec, &create).await, made);
        assert_eq!(stacks_named(&client, &stack).await, 1);

        let apply = start_request(ActionType::ApplyChangeSet, "apply", json!({"stack_name": stack, "change_set_name": "first"}));
        let applied = drive(&exec, &apply).await;
        assert!(outputs(&applied).contains_key("Name"), "the stack's outputs: {applied:?}");
        let status = client.describe_stacks().stack_name(&stack).send().await.expect("stack");
        assert_eq!(status.stacks()[0].stack_status(), Some(&cfn::types::StackStatus::CreateComplete));
        // Replayed: the executed change set is followed, not executed again.
        assert_eq!(drive(&exec, &apply).await, applied);

        let drop = start_request(ActionType::DeleteChangeSet, "drop", json!({"stack_name": stack, "change_set_name": "first"}));
        let dropped = drive(&exec, &drop).await;
        assert!(["SUCCESS", "NOT_FOUND"].contains(&outputs(&dropped)["DeletionResult"].as_str().unwrap_or_default()));
        assert_eq!(outputs(&drive(&exec, &drop).await)["DeletionResult"], "NOT_FOUND");

        let missing = start_request(ActionType::ApplyChangeSet, "apply", json!({"stack_name": stack, "change_set_name": "never"}));
        let failed = exec.start(missing).await;
        assert!(error(&failed).contains("change set never does not exist on stack"), "{failed:?}");
        let no_template = start_request(
            ActionType::CreateChangeSet,
            "plan",
            json!({"stack_name": unique("cs"), "change_set_name": "x", "template_url": "https://nowhere.invalid/no-such-bucket/t.yaml"}),
        );
        let failed = exec.start(no_template).await;
        assert!(error(&failed).starts_with("CreateChangeSet x for stack "), "{failed:?}");
    });
}

// ---- all of them in one run of `baton`, spelled as Simple Cloud Kit files spell them ----

const PIPELINE: &str = r#"
- label: bake
  type: AWS::CreateImage
  params: {image_name: "{{ vars.image }}", instance_id: "{{ vars.instance }}", tags: {App: web}}
- label: encrypt
  type: AWS::CopyImage
  depends_on: [bake]
  params: {image_name: "{{ vars.image }}", destination_image_name: "{{ vars.image }}-enc"}
- label: share
  type: share-image
  depends_on: [encrypt]
  params: {image_name: "{{ vars.image }}-enc", accounts_to_share: ["111111111111"], siblings: ["111111111111"]}
- label: drop-copy
  type: delete_image
  depends_on: [share]
  params: {image_name: "{{ outputs['encrypt'].DestinationImageName }}"}
- label: drop-image
  type: aws.delete_image
  depends_on: [drop-copy]
  params: {image_name: "{{ vars.image }}"}
- label: grants
  type: AWS::KMS::CreateGrants
  params:
    kms_key_arn: "{{ vars.key }}"
    grantee_principals: ["arn:aws:iam::123456789012:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS"]
    operations: [Encrypt, Decrypt]
    ignore_failed_grants: "True"
- label: enis
  type: AWS::DeleteSecurityGroupEnis
  params: {security_group_id: "{{ vars.group }}"}
- label: db
  type: AWS::RDS::ModifyDbInstance
  params: {api_params: {DBInstanceIdentifier: "{{ vars.db }}", ApplyImmediately: true, BackupRetentionPeriod: 3}}
- label: cache
  type: AWS::CreateCloudFrontInvalidation
  params: {distribution_id: "{{ vars.distribution }}", paths: ["/index.html"]}
- label: unprotect
  type: AWS::UnprotectELB
  params: {load_balancer: "{{ vars.lb }}"}
- label: users
  type: AWS::CreateUser
  params: {user_names: ["{{ vars.user }}", "{{ vars.user }}-tmp"], roles: deployer, account: "123456789012"}
- label: no-tmp-user
  type: AWS::DeleteUser
  depends_on: [users]
  params: {user_names: "{{ vars.user }}-tmp"}
- label: plan
  type: AWS::CreateChangeSet
  params: {stack_name: "{{ vars.stack }}", change_set_name: plan, template_body: '{"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}, "Outputs": {"Name": {"Value": "q", "Export": {"Name": "{{ vars.stack }}:Name"}}}}'}
- label: apply
  type: AWS::ExecuteChangeSet
  depends_on: [plan]
  params: {stack_name: "{{ vars.stack }}", change_set_name: plan}
- label: references
  type: AWS::GetStackReferences
  depends_on: [apply]
  params: {stack_name: "{{ vars.stack }}", output_name: Name}
- label: spare
  type: create-change-set
  params: {stack_name: "{{ vars.stack }}-spare", change_set_name: spare, template_body: '{"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}'}
- label: drop-spare
  type: AWS::DeleteChangeSet
  depends_on: [spare]
  params: {stack_name: "{{ vars.stack }}-spare", change_set_name: spare}
"#;

/// What the run is given: moto resources made beforehand, by variable name.
async fn pipeline_setup(endpoint: &str) -> Vec<(&'static str, String)> {
    let ec2 = ec2_client(endpoint);
    let key = kms_client(endpoint).create_key().send().await.expect("key");
    let key = key
        .key_metadata()
        .and_then(|m| m.arn())
        .expect("key arn")
        .to_string();
    let (group, _) = group_with_interfaces(&ec2, 7).await;
    let db = unique("db");
    rds_client(endpoint)
        .create_db_instance()
        .db_instance_identifier(&db)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .master_username("admin")
        .master_user_password("not-a-secret-1")
        .allocated_storage(20)
        .send()
        .await
        .expect("db");
    vec![
        ("image", unique("pipeline")),
        ("instance", instance(&ec2).await),
        ("key", key),
        ("group", group),
        ("db", db),
        ("distribution", distribution(endpoint).await),
        ("lb", protected_load_balancer(endpoint, 6).await),
        ("user", unique("ci")),
        ("stack", unique("cs")),
    ]
}

#[test]
fn every_kind_runs_through_baton_against_moto() {
    let Some(endpoint) = endpoint() else { return };
    let setup = rt().block_on(pipeline_setup(&endpoint));
    let var = |name: &str| {
        setup
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .expect("var")
    };
    let scratch = Scratch::new();
    scratch.write("kinds.yaml", PIPELINE);
    let run_id = unique("kinds");
    let vars: Vec<String> = setup
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    let mut args = vec!["run", "kinds.yaml", "--json", "--run-id", run_id.as_str()];
    for v in &vars {
        args.extend(["--var", v.as_str()]);
    }
    let out = baton_aws(&scratch, &endpoint, &args);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let summary = json(&out);
    assert_eq!(summary["status"], "succeeded", "{summary:#}");
    let actions = &summary["actions"];
    // What each action did, as moto has it now.
    rt().block_on(async {
        let ec2 = ec2_client(&endpoint);
        let image = var("image");
        assert!(actions["bake"]["outputs"]["ImageId"].as_str().is_some_and(|id| id.starts_with("ami-")));
        assert!(images_named(&ec2, &image).await.is_empty(), "the image is deregistered");
        assert!(images_named(&ec2, &format!("{image}-enc")).await.is_empty(), "the copy is deregistered");
        assert_eq!(actions["share"]["outputs"]["SharedAccounts"], json!(["111111111111"]));

        let grants = kms_client(&endpoint).list_grants().key_id(var("key")).send().await.expect("grants");
        let principals: Vec<_> = grants.grants().iter().filter_map(|g| g.grantee_principal()).collect();
        assert_eq!(principals, ["arn:aws:iam::123456789012:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS"]);

        assert_eq!(interfaces_of(&ec2, &var("group")).await, 0, "the group's interfaces are deleted");
        assert_eq!(actions["enis"]["outputs"]["DeletedEnis"].as_array().map(Vec::len), Some(2));

        let db = rds_client(&endpoint).describe_db_instances().db_instance_identifier(var("db")).send().await.expect("db");
        assert_eq!(db.db_instances()[0].backup_retention_period(), Some(3));

        let invalidation = actions["cache"]["outputs"]["InvalidationId"].as_str().expect("invalidation id");
        let got = cloudfront_client(&endpoint)
            .get_invalidation()
            .distribution_id(var("distribution"))
            .id(invalidation)
            .send()
            .await
            .expect("the invalidation exists");
        let paths = got.invalidation().and_then(|i| i.invalidation_batch()).and_then(|b| b.paths()).map(|p| p.items().to_vec());
        assert_eq!(paths, Some(vec!["/index.html".to_string()]));

        let elb = elbv2_client(&endpoint);
        assert_eq!(deletion_protection(&elb, &var("lb")).await.as_deref(), Some("false"));

        let iam = iam_client(&endpoint);
        let user = var("user");
        assert_eq!(user_policy(&iam, &user).await["Statement"][0]["Resource"], json!(["arn:aws:iam::123456789012:role/deployer"]));
        assert!(iam.get_user().user_name(format!("{user}-tmp")).send().await.is_err(), "the temporary user is deleted");

        let cfn = cfn_client(&endpoint);
        let stack = cfn.describe_stacks().stack_name(var("stack")).send().await.expect("stack");
        assert_eq!(stack.stacks()[0].stack_status(), Some(&cfn::types::StackStatus::CreateComplete));
        assert_eq!(actions["apply"]["outputs"]["Name"], "q");
        assert_eq!(actions["references"]["outputs"]["NumReferences"], 0);
        let spare = cfn.describe_change_set().stack_name(format!("{}-spare", var("stack"))).change_set_name("spare").send().await;
        assert!(spare.is_err(), "the spare change set is deleted");
    });
}

/// A CloudFront distribution in moto (the legacy cache settings moto understands).
#[allow(deprecated)]
async fn distribution(endpoint: &str) -> String {
    use aws_sdk_cloudfront::types as cf;
    let origin = cf::Origin::builder()
        .id("site")
        .domain_name("site.s3.amazonaws.com")
        .s3_origin_config(
            cf::S3OriginConfig::builder()
                .origin_access_identity("")
                .build(),
        )
        .build()
        .expect("origin");
    let behaviour = cf::DefaultCacheBehavior::builder()
        .target_origin_id("site")
        .viewer_protocol_policy(cf::ViewerProtocolPolicy::AllowAll)
        .min_ttl(0)
        .forwarded_values(
            cf::ForwardedValues::builder()
                .query_string(false)
                .cookies(
                    cf::CookiePreference::builder()
                        .forward(cf::ItemSelection::None)
                        .build()
                        .expect("cookies"),
                )
                .build()
                .expect("forwarded"),
        )
        .trusted_signers(
            cf::TrustedSigners::builder()
                .enabled(false)
                .quantity(0)
                .build()
                .expect("signers"),
        )
        .build()
        .expect("behaviour");
    let config = cf::DistributionConfig::builder()
        .caller_reference(unique("dist"))
        .origins(
            cf::Origins::builder()
                .quantity(1)
                .items(origin)
                .build()
                .expect("origins"),
        )
        .default_cache_behavior(behaviour)
        .comment("")
        .enabled(true)
        .build()
        .expect("config");
    let made = cloudfront_client(endpoint)
        .create_distribution()
        .distribution_config(config)
        .send()
        .await
        .expect("distribution");
    made.distribution()
        .map(|d| d.id().to_string())
        .expect("distribution id")
}

// ---- what moto never shows (it finishes everything at once), with SDK-level mocks ----

/// A client of `$sdk` answered by `$rules` (any rule that matches, in order).
macro_rules! mocked {
    ($sdk:ident, $rules:expr) => {{
        let mut interceptor = aws_smithy_mocks::MockResponseInterceptor::new()
            .rule_mode(aws_smithy_mocks::RuleMode::MatchAny);
        for rule in $rules {
            interceptor = interceptor.with_rule(rule);
        }
        $sdk::Client::from_conf(
            $sdk::Config::builder()
                .behavior_version($sdk::config::BehaviorVersion::latest())
                .region($sdk::config::Region::new("us-east-1"))
                .credentials_provider(creds())
                .http_client(aws_smithy_mocks::create_mock_http_client())
                .interceptor(interceptor)
                .build(),
        )
    }};
}

/// An executor whose AWS is the given service clients (CloudFormation and S3 answer nothing).
fn mocked_exec(services: baton_core::aws::Services) -> StandardExecutor {
    let cfn = mocked!(cfn, &Vec::<aws_smithy_mocks::Rule>::new());
    let s3 = mocked!(aws_sdk_s3, &Vec::<aws_smithy_mocks::Rule>::new());
    StandardExecutor::with_aws(baton_core::aws::Aws::fixed_with(cfn, s3, services))
}

fn image(id: &str, state: ec2::types::ImageState, reason: Option<&str>) -> ec2::types::Image {
    let snapshot = ec2::types::BlockDeviceMapping::builder()
        .device_name("/dev/xvda")
        .ebs(
            ec2::types::EbsBlockDevice::builder()
                .snapshot_id("snap-1")
                .build(),
        )
        .build();
    ec2::types::Image::builder()
        .image_id(id)
        .name("baked")
        .state(state)
        .block_device_mappings(snapshot)
        .set_state_reason(reason.map(|r| ec2::types::StateReason::builder().message(r).build()))
        .build()
}

#[test]
fn an_image_is_checked_until_available_and_a_failed_one_says_why() {
    use aws_smithy_mocks::mock;
    use ec2::types::ImageState;
    rt().block_on(async {
        let describe = mock!(ec2::Client::describe_images)
            .match_requests(|r| r.image_ids() == ["ami-1"])
            .sequence()
            .output(|| {
                ec2::operation::describe_images::DescribeImagesOutput::builder()
                    .images(image("ami-1", ImageState::Pending, None))
                    .build()
            })
            .output(|| {
                ec2::operation::describe_images::DescribeImagesOutput::builder()
                    .images(image("ami-1", ImageState::Available, None))
                    .build()
            })
            .build();
        let failed = mock!(ec2::Client::describe_images)
            .match_requests(|r| r.image_ids() == ["ami-2"])
            .then_output(|| {
                ec2::operation::describe_images::DescribeImagesOutput::builder()
                    .images(image(
                        "ami-2",
                        ImageState::Failed,
                        Some("Client.InternalError: the snapshot failed"),
                    ))
                    .build()
            });
        let tagged = mock!(ec2::Client::create_tags)
            .then_output(|| ec2::operation::create_tags::CreateTagsOutput::builder().build());
        let services = baton_core::aws::Services {
            ec2: Some(mocked!(ec2, [&describe, &failed, &tagged])),
            ..Default::default()
        };
        let exec = mocked_exec(services);
        let create = start_request(
            ActionType::CreateImage,
            "bake",
            json!({"image_name": "baked", "instance_id": "i-1", "tags": {"App": "web"}}),
        );
        let check = check_request(&create, json!({"image_id": "ami-1"}));
        match exec.check(check.clone()).await {
            Outcome::Running {
                handle,
                check_after,
            } => {
                assert_eq!(handle, json!({"image_id": "ami-1"}));
                assert_eq!(check_after, std::time::Duration::from_secs(15));
            }
            other => panic!("a pending image is still running: {other:?}"),
        }
        let done = exec.check(check).await;
        assert_eq!(outputs(&done)["ImageState"], "available");
        assert_eq!(outputs(&done)["SnapshotIds"], json!(["snap-1"]));
        assert_eq!(tagged.num_calls(), 1, "the snapshots get the image's tags");
        let broken = exec
            .check(check_request(&create, json!({"image_id": "ami-2"})))
            .await;
        assert_eq!(
            error(&broken),
            "image ami-2 is failed: Client.InternalError: the snapshot failed"
        );
    });
}

#[test]
fn an_invalidation_in_progress_is_checked_again() {
    use aws_sdk_cloudfront as cf;
    use aws_smithy_mocks::mock;
    fn invalidation(
        status: &'static str,
    ) -> cf::operation::get_invalidation::GetInvalidationOutput {
        let paths = cf::types::Paths::builder()
            .quantity(1)
            .items("/*")
            .build()
            .expect("paths");
        let batch = cf::types::InvalidationBatch::builder()
            .paths(paths)
            .caller_reference("ref")
            .build()
            .expect("batch");
        let invalidation = cf::types::Invalidation::builder()
            .id("I1")
            .status(status)
            .create_time(aws_smithy_types::DateTime::from_secs(0))
            .invalidation_batch(batch)
            .build()
            .expect("invalidation");
        cf::operation::get_invalidation::GetInvalidationOutput::builder()
            .invalidation(invalidation)
            .build()
    }
    rt().block_on(async {
        let got = mock!(cf::Client::get_invalidation)
            .sequence()
            .output(|| invalidation("InProgress"))
            .output(|| invalidation("Completed"))
            .build();
        let services = baton_core::aws::Services {
            cloudfront: Some(mocked!(cf, [&got])),
            ..Default::default()
        };
        let exec = mocked_exec(services);
        let invalidate = start_request(ActionType::CreateCloudFrontInvalidation, "cache", json!({"distribution_id": "E1", "paths": ["/*"]}));
        let check = check_request(&invalidate, json!({"invalidation_id": "I1"}));
        assert!(
            matches!(exec.check(check.clone()).await, Outcome::Running { check_after, .. } if check_after == std::time::Duration::from_secs(20))
        );
        assert_eq!(outputs(&exec.check(check).await)["InvalidationStatus"], "Completed");
    });
}

#[test]
fn a_busy_db_instance_is_modified_once_available_and_followed_until_nothing_is_pending() {
    use aws_sdk_rds as rds;
    use aws_smithy_mocks::mock;
    fn instance(
        status: &str,
        pending: bool,
    ) -> rds::operation::describe_db_instances::DescribeDbInstancesOutput {
        let values = rds::types::PendingModifiedValues::builder()
            .set_backup_retention_period(pending.then_some(3))
            .build();
        let instance = rds::types::DbInstance::builder()
            .db_instance_identifier("db-1")
            .db_instance_status(status)
            .pending_modified_values(values)
            .build();
        rds::operation::describe_db_instances::DescribeDbInstancesOutput::builder()
            .db_instances(instance)
            .build()
    }
    rt().block_on(async {
        let modify = mock!(rds::Client::modify_db_instance)
            .sequence()
            .error(|| {
                rds::operation::modify_db_instance::ModifyDBInstanceError::generic(
                    rds::error::ErrorMetadata::builder()
                        .code("InvalidDBInstanceState")
                        .message("Database instance is not in available state.")
                        .build(),
                )
            })
            .output(|| rds::operation::modify_db_instance::ModifyDbInstanceOutput::builder().build())
            .build();
        let describe = mock!(rds::Client::describe_db_instances)
            .sequence()
            .output(|| instance("backing-up", false))
            .output(|| instance("available", false))
            .output(|| instance("modifying", true))
            .output(|| instance("available", false))
            .build();
        let services = baton_core::aws::Services {
            rds: Some(mocked!(rds, [&modify, &describe])),
            ..Default::default()
        };
        let exec = mocked_exec(services);
        let request = start_request(
            ActionType::ModifyDbInstance,
            "db",
            json!({"api_params": {"DBInstanceIdentifier": "db-1", "ApplyImmediately": true, "BackupRetentionPeriod": 3}}),
        );
        let Outcome::Running { handle, .. } = exec.start(request.clone()).await else { panic!("a busy instance is waited for") };
        assert_eq!(handle, json!({"waiting_to_modify": true}));
        // Still backing up: nothing sent.
        let Outcome::Running { handle, .. } = exec.check(check_request(&request, handle)).await else { panic!("still waiting") };
        assert_eq!(modify.num_calls(), 1);
        // Available: the change is sent, and then followed.
        let Outcome::Running { handle, .. } = exec.check(check_request(&request, handle)).await else { panic!("sent") };
        assert_eq!(modify.num_calls(), 2);
        let Outcome::Running { handle, .. } = exec.check(check_request(&request, handle)).await else { panic!("modifying") };
        let done = exec.check(check_request(&request, handle)).await;
        assert_eq!(outputs(&done)["DBInstanceStatus"], "available");
        assert_eq!(modify.num_calls(), 2, "sent once it could be");
    });
}
