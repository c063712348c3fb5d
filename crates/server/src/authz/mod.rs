//! Authorization of requests to the services Tollgate protects: the access rules of the
//! `--config` file, reloaded on SIGHUP, and the checks that apply them (forward-auth for reverse
//! proxies).
//!
//! The file is TOML; each `[[rule]]` is one rule, in order:
//!
//! ```toml
//! [[rule]]
//! path = "/api/test/all"
//! policy = "bypass"
//!
//! [[rule]]
//! host = "app.example.com"          # optional
//! path = "/api/orders/**"
//! methods = ["GET", "POST"]         # optional
//! any_of = ["admin", "moderator"]
//! ```

mod path;
mod rules;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock},
};

use anyhow::Context;
use serde::Deserialize;

pub use path::{PathError, PathPattern, RequestPath};
pub use rules::{Decision, Outcome, Policy, RawRule, Rule, RuleError, Rules, Target};

/// The `--config` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

/// Reads and checks the rules of a configuration file's text.
pub fn parse_rules(text: &str) -> anyhow::Result<Rules> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Rules::parse(&file.rule)?)
}

/// Reads and checks the rules of the configuration file at `path`.
pub fn load_rules(path: &Path) -> anyhow::Result<Rules> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
    parse_rules(&text).with_context(|| format!("in {}", path.display()))
}

/// The rules in force, shared by every request; replaced whole on reload.
#[derive(Clone)]
pub struct Authz {
    file: Option<PathBuf>,
    rules: Arc<RwLock<Arc<Rules>>>,
}

impl Authz {
    /// The rules of `file`; no file means no rules, so every protected request is denied.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let rules = match file {
            Some(file) => load_rules(file)?,
            None => Rules::default(),
        };
        Ok(Self::with_rules(file.map(Path::to_owned), rules))
    }

    pub fn with_rules(file: Option<PathBuf>, rules: Rules) -> Self {
        Self {
            file,
            rules: Arc::new(RwLock::new(Arc::new(rules))),
        }
    }

    pub fn rules(&self) -> Arc<Rules> {
        self.rules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the file again. A file that does not load leaves the rules in force as they were;
    /// either way the outcome is logged.
    pub fn reload(&self) {
        let Some(file) = &self.file else {
            tracing::info!("reload asked for, but there is no --config file: nothing to reload");
            return;
        };
        match load_rules(file) {
            Ok(rules) => {
                let count = rules.len();
                *self.rules.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(rules);
                tracing::info!(file = %file.display(), rules = count, "access rules reloaded");
            }
            Err(e) => tracing::error!(
                file = %file.display(),
                "access rules NOT reloaded, the previous ones stay in force: {e:#}"
            ),
        }
    }

    /// Reloads the rules whenever the process receives SIGHUP.
    #[cfg(unix)]
    pub fn reload_on_sighup(&self) -> anyhow::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
        let authz = self.clone();
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                authz.reload();
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_the_tutorials_rules_loads() {
        let rules = parse_rules(
            r#"
            [[rule]]
            path = "/api/test/all"
            policy = "bypass"

            [[rule]]
            path = "/api/test/user"
            policy = "authenticated"

            [[rule]]
            path = "/api/test/mod"
            any_of = ["moderator"]

            [[rule]]
            path = "/api/test/admin"
            any_of = ["admin"]
            "#,
        )
        .unwrap();
        assert_eq!(rules.len(), 4);
    }

    #[test]
    fn file_errors_say_where() {
        let error = parse_rules("[[rule]]\npath = \"/a\"\npolicy = \"bypass\"\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("bogus") && error.contains("line 4"),
            "{error}"
        );
        let error = parse_rules("[[rule]]\npath = \"/a\"\nany_of = [\"root\"]\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("rule 1") && error.contains("root"),
            "{error}"
        );
    }

    #[test]
    fn a_bad_reload_keeps_the_rules_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tollgate.toml");
        std::fs::write(&file, "[[rule]]\npath = \"/a\"\npolicy = \"bypass\"\n").unwrap();
        let authz = Authz::load(Some(&file)).unwrap();
        assert_eq!(authz.rules().len(), 1);
        std::fs::write(&file, "[[rule]]\npath = \"/a\"\nany_of = [\"root\"]\n").unwrap();
        authz.reload();
        assert_eq!(authz.rules().len(), 1);
        std::fs::write(
            &file,
            "[[rule]]\npath = \"/a\"\npolicy = \"bypass\"\n[[rule]]\npath = \"/b\"\npolicy = \"bypass\"\n",
        )
        .unwrap();
        authz.reload();
        assert_eq!(authz.rules().len(), 2);
    }
}
