//! Defaults people repeat on every command, from a config file. Precedence: a flag, then the
//! environment, then the file, then baton's built-in default.
//!
//! The file is TOML: `$BATON_CONFIG` if set (then it must exist), else
//! `$XDG_CONFIG_HOME/baton/config.toml`, else `~/.config/baton/config.toml` (optional).

use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::ArgMatches;
use serde::Deserialize;

use crate::args::{AwsArgs, S3StoreArgs, StoreArgs};
use crate::Failure;

/// The settings a config file may hold. Unknown keys are refused (a typo would otherwise be
/// silently ignored).
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where runs are kept (`--store`).
    pub store: Option<String>,
    /// AWS profile (`--profile`).
    pub profile: Option<String>,
    /// AWS region (`--region`).
    pub region: Option<String>,
    /// AWS endpoint (`--endpoint-url`).
    pub endpoint_url: Option<String>,
    /// Role name assumed in an action's account (`--role-name`).
    pub role_name: Option<String>,
    /// `false`: the console draws without colour (as `NO_COLOR` does).
    pub color: Option<bool>,
    /// `false`: the console ignores the mouse (as `--no-mouse` does).
    pub mouse: Option<bool>,
}

/// The config file baton reads, and whether it must exist.
pub fn location() -> Option<(PathBuf, bool)> {
    if let Some(path) = std::env::var_os("BATON_CONFIG").filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(path), true));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")))?;
    Some((base.join("baton").join("config.toml"), false))
}

/// Reads the config file; an absent optional file is an empty config.
pub fn load() -> Result<Config, Failure> {
    let Some((path, required)) = location() else {
        return Ok(Config::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(Config::default())
        }
        Err(err) => {
            return Err(Failure::Invalid(format!(
            "{}: cannot read the config file: {err} (BATON_CONFIG names it; unset it to use none)",
            path.display()
        )))
        }
    };
    parse(&path, &text)
}

fn parse(path: &Path, text: &str) -> Result<Config, Failure> {
    toml::from_str(text).map_err(|err| {
        let message = err.message();
        let line = err
            .span()
            .and_then(|span| text.get(..span.start))
            .map(|before| {
                let number = before.matches('\n').count() + 1;
                let shown = text.lines().nth(number - 1).unwrap_or("").trim();
                format!(" (line {number}: {shown})")
            })
            .unwrap_or_default();
        Failure::Invalid(format!(
            "{}: {message}{line}; fix the config file (or point BATON_CONFIG at another)",
            path.display()
        ))
    })
}

impl Config {
    /// Fills the options the command line and the environment left at their defaults.
    pub fn apply_to_store(&self, store: &mut StoreArgs, matches: &ArgMatches) {
        if let Some(value) = &self.store {
            if defaulted(matches, "store") {
                store.store = value.clone();
            }
        }
        self.apply_to_aws(&mut store.aws, matches);
    }

    /// `submit`'s store has no built-in default: the file's, if neither flag nor env gave one.
    pub fn apply_to_s3_store(&self, store: &mut S3StoreArgs, matches: &ArgMatches) {
        if store.store.is_none() {
            store.store.clone_from(&self.store);
        }
        self.apply_to_aws(&mut store.aws, matches);
    }

    fn apply_to_aws(&self, aws: &mut AwsArgs, matches: &ArgMatches) {
        let fill = |target: &mut Option<String>, value: &Option<String>, id: &str| {
            if value.is_some() && defaulted(matches, id) {
                target.clone_from(value);
            }
        };
        fill(&mut aws.profile, &self.profile, "profile");
        fill(&mut aws.region, &self.region, "region");
        fill(&mut aws.endpoint_url, &self.endpoint_url, "endpoint_url");
        if let Some(role) = &self.role_name {
            if defaulted(matches, "role_name") {
                aws.role_name = role.clone();
            }
        }
    }

    /// Whether the console may use the mouse: `--no-mouse`, else the file, else yes.
    pub fn mouse(&self, no_mouse_flag: bool) -> bool {
        !no_mouse_flag && self.mouse != Some(false)
    }

    /// Whether the console draws in colour: `NO_COLOR` (non-empty), else the file, else yes.
    pub fn color(&self) -> bool {
        crate::tui::color_enabled() && self.color != Some(false)
    }
}

/// Whether an option got its value from neither the command line nor the environment.
fn defaulted(matches: &ArgMatches, id: &str) -> bool {
    matches!(
        matches
            .try_contains_id(id)
            .ok()
            .and_then(|_| matches.value_source(id)),
        None | Some(ValueSource::DefaultValue)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_wrong_types_name_the_file_and_line() {
        let path = Path::new("/etc/baton.toml");
        let err = parse(path, "store = \"s3://b/p\"\nstroe = \"x\"\n").expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("/etc/baton.toml"), "{text}");
        assert!(text.contains("stroe") && text.contains("line 2"), "{text}");
        let err = parse(path, "mouse = \"no\"").expect_err("refused");
        assert!(err.to_string().contains("mouse"), "{err}");
    }

    #[test]
    fn every_key_reads() {
        let config = parse(
            Path::new("c.toml"),
            "store = \"s3://b/p\"\nprofile = \"ops\"\nregion = \"eu-west-1\"\n\
             endpoint_url = \"http://localhost:5000\"\nrole_name = \"r\"\ncolor = false\nmouse = false\n",
        )
        .expect("reads");
        assert_eq!(config.store.as_deref(), Some("s3://b/p"));
        assert_eq!(config.role_name.as_deref(), Some("r"));
        assert!(!config.mouse(false));
        assert!(!config.color());
    }
}
