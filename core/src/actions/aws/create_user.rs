//! `aws.create_user`: makes sure IAM users exist and, with `roles`, that each may assume those
//! roles (an inline policy `<user>-AssumeRoles-Policy` whose `sts:AssumeRole` statement names
//! them; the policy's other statements are kept). Users that exist are kept as they are.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{AccountId, OneOrMany};
use crate::actions::{Mode, ParamsProblem, Schema, TypeSpec};

/// The `aws.create_user` type.
pub struct CreateUser;

impl Schema for CreateUser {
    const SPEC: TypeSpec = TypeSpec {
        name: "aws.create_user",
        mode: Mode::Sync,
        poll_interval: Duration::ZERO,
        can_cancel: false,
        replay_safe: true,
    };
    const FEATURE: &'static str = "aws-iam";
    type Params = Params;

    fn validate(p: &Params) -> Result<(), ParamsProblem> {
        if p.names().is_empty() {
            return Err(ParamsProblem::new("user_names", "name at least one user"));
        }
        Ok(())
    }
}

/// Params of `aws.create_user`.
#[allow(missing_docs)] // IAM's own names
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub user_names: Option<OneOrMany>,
    pub user_name: Option<String>,
    /// Roles the users may assume: names (in `account`) or ARNs.
    pub roles: Option<OneOrMany>,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
}

impl Params {
    /// Every user named, `user_names` first.
    pub(crate) fn names(&self) -> Vec<String> {
        OneOrMany::with_single(self.user_names.as_ref(), self.user_name.as_ref())
    }
}

super::aws_target!(Params);

/// The inline policy that lets a user assume the roles.
#[cfg_attr(not(feature = "aws-iam"), allow(dead_code))]
fn policy_name(user: &str) -> String {
    format!("{user}-AssumeRoles-Policy")
}

/// The policy document with its `sts:AssumeRole` statements naming exactly `roles` (one is
/// added if there is none); every other statement is kept as it was.
#[cfg_attr(not(feature = "aws-iam"), allow(dead_code))]
fn assume_role_policy(existing: Option<&Value>, roles: &BTreeSet<String>) -> Value {
    let assumes = |statement: &Value| {
        let action = statement.get("Action");
        let names_it = match action {
            Some(Value::String(a)) => a == "sts:AssumeRole",
            Some(Value::Array(list)) => list.iter().any(|a| a == "sts:AssumeRole"),
            _ => false,
        };
        names_it && statement.get("Effect").and_then(Value::as_str) == Some("Allow")
    };
    let mut statements: Vec<Value> = match existing.and_then(|p| p.get("Statement")) {
        Some(Value::Array(list)) => list.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    };
    let mut found = false;
    for statement in statements.iter_mut().filter(|s| assumes(s)) {
        statement["Resource"] = json!(roles);
        found = true;
    }
    if !found {
        statements.push(json!({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": roles}));
    }
    let version = existing
        .and_then(|p| p.get("Version"))
        .cloned()
        .unwrap_or_else(|| json!("2012-10-17"));
    json!({"Version": version, "Statement": statements})
}

/// IAM hands policy documents back URL-encoded (RFC 3986: `+` stays `+`).
#[cfg_attr(not(feature = "aws-iam"), allow(dead_code))]
fn parse_policy(text: &str) -> Option<Value> {
    serde_json::from_str(text)
        .ok()
        .or_else(|| serde_json::from_str(&percent_decode(text)).ok())
}

#[cfg_attr(not(feature = "aws-iam"), allow(dead_code))]
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(not(feature = "aws-iam"))]
#[cfg(feature = "aws")]
super::needs_feature!(CreateUser);

#[cfg(feature = "aws-iam")]
mod calls {
    use std::collections::BTreeSet;

    use aws_sdk_iam::Client;
    use serde_json::{json, Map};

    use super::{assume_role_policy, parse_policy, policy_name, CreateUser, Params};
    use crate::actions::aws::call_failed;
    use crate::actions::{Behaviour, Env, Outcome, StartRequest};
    use crate::aws::code;
    use crate::log::Level;

    impl Behaviour for CreateUser {
        async fn start(env: &Env, params: Params, request: &StartRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => start(&aws.iam(&params.target(aws)).await, &params, request).await,
                Err(outcome) => outcome,
            }
        }
    }

    /// Role ARNs: names are roles of `account`.
    fn role_arns(p: &Params) -> Result<BTreeSet<String>, Outcome> {
        let roles = p.roles.as_ref().map(|r| r.to_vec()).unwrap_or_default();
        let account = p.account.as_ref().map(|a| a.to_text());
        roles
            .into_iter()
            .filter(|r| !r.trim().is_empty())
            .map(|role| {
                if role.starts_with("arn:") {
                    return Ok(role);
                }
                match &account {
                    Some(account) => Ok(format!("arn:aws:iam::{account}:role/{role}")),
                    None => Err(Outcome::failed(format!(
                        "params.roles: \"{role}\" is a role name; give account (the role's \
                         account) or the role's ARN"
                    ))),
                }
            })
            .collect()
    }

    async fn start(client: &Client, p: &Params, request: &StartRequest) -> Outcome {
        let roles = match role_arns(p) {
            Ok(roles) => roles,
            Err(outcome) => return outcome,
        };
        let (mut created, mut existing, mut with_policy) = (vec![], vec![], vec![]);
        for user in p.names() {
            if user.trim().is_empty() {
                return Outcome::failed("params.user_names: a user name is empty");
            }
            match client.get_user().user_name(&user).send().await {
                Ok(_) => existing.push(user.clone()),
                Err(e) if code(&e).as_deref() == Some("NoSuchEntity") => {
                    if let Err(e) = client.create_user().user_name(&user).send().await {
                        if code(&e).as_deref() != Some("EntityAlreadyExists") {
                            return call_failed(&format!("CreateUser {user}"), &e);
                        }
                    }
                    request
                        .log
                        .send(Level::Info, format!("created user {user}"));
                    created.push(user.clone());
                }
                Err(e) => return call_failed(&format!("GetUser {user}"), &e),
            }
            if !roles.is_empty() {
                if let Err(outcome) = allow_roles(client, &user, &roles).await {
                    return outcome;
                }
                with_policy.push(user);
            }
        }
        let mut outputs = Map::new();
        outputs.insert("CreatedUsers".into(), json!(created));
        outputs.insert("SkippedUsers".into(), json!(existing));
        outputs.insert("UsersWithPolicies".into(), json!(with_policy));
        outputs.insert("CreationResult".into(), json!("SUCCESS"));
        Outcome::Complete { outputs }
    }

    /// Puts the user's assume-role policy, keeping its other statements.
    async fn allow_roles(
        client: &Client,
        user: &str,
        roles: &BTreeSet<String>,
    ) -> Result<(), Outcome> {
        let name = policy_name(user);
        let existing = match client
            .get_user_policy()
            .user_name(user)
            .policy_name(&name)
            .send()
            .await
        {
            Ok(out) => parse_policy(out.policy_document()),
            Err(e) if code(&e).as_deref() == Some("NoSuchEntity") => None,
            Err(e) => return Err(call_failed(&format!("GetUserPolicy {user} {name}"), &e)),
        };
        let document = assume_role_policy(existing.as_ref(), roles);
        client
            .put_user_policy()
            .user_name(user)
            .policy_name(&name)
            .policy_document(document.to_string())
            .send()
            .await
            .map(drop)
            .map_err(|e| call_failed(&format!("PutUserPolicy {user} {name}"), &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn the_assume_role_statement_is_replaced_and_others_kept() {
        let existing = json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
                {"Effect": "Allow", "Action": ["sts:AssumeRole"], "Resource": ["arn:old"]}
            ]
        });
        let policy = assume_role_policy(Some(&existing), &roles(&["arn:b", "arn:a"]));
        assert_eq!(policy["Statement"][0], existing["Statement"][0]);
        assert_eq!(
            policy["Statement"][1]["Resource"],
            json!(["arn:a", "arn:b"])
        );
        assert_eq!(policy["Statement"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn a_policy_without_one_gets_an_assume_role_statement() {
        let policy = assume_role_policy(None, &roles(&["arn:a"]));
        assert_eq!(
            policy,
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": ["arn:a"]}
            ]})
        );
    }

    #[test]
    fn url_encoded_policies_are_read() {
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D";
        assert_eq!(
            parse_policy(encoded),
            Some(json!({"Version": "2012-10-17", "Statement": []}))
        );
        assert_eq!(parse_policy("{\"a\": 1}"), Some(json!({"a": 1})));
    }
}
