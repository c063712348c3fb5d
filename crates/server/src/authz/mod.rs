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
//!
//! # Gate mode: where allowed requests go, by longest path prefix (read at start).
//! [[upstream]]
//! prefix = "/"
//! url = "http://127.0.0.1:3000"
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

/// The `--config` file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    rule: Vec<RawRule>,
    #[serde(default)]
    upstream: Vec<RawUpstream>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    prefix: String,
    url: String,
}

/// Where gate mode sends the allowed requests under a path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Normalised: starts with `/`, no trailing `/` (except the root itself).
    pub prefix: String,
    /// `http://host:port`, optionally with a base path.
    pub url: String,
}

impl Upstream {
    /// Checks a prefix and an upstream URL (plain HTTP: the upstream runs beside Tollgate).
    pub fn parse(prefix: &str, url: &str) -> Result<Self, String> {
        if !prefix.starts_with('/') {
            return Err(format!("upstream prefix `{prefix}` must start with `/`"));
        }
        let uri: axum::http::Uri = url
            .parse()
            .map_err(|_| format!("upstream `{url}` is not a URL"))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() {
            return Err(format!(
                "upstream `{url}` must be an http:// URL with a host (TLS to upstreams is not \
                 supported: run Tollgate beside the service)"
            ));
        }
        if uri.query().is_some() {
            return Err(format!("upstream `{url}` must not have a query"));
        }
        let trimmed = prefix.trim_end_matches('/');
        Ok(Self {
            prefix: if trimmed.is_empty() {
                "/".to_owned()
            } else {
                trimmed.to_owned()
            },
            url: url.trim_end_matches('/').to_owned(),
        })
    }

    /// Whether `path` is under this prefix (whole segments: `/api` covers `/api/x`, not
    /// `/apix`).
    pub fn covers(&self, path: &str) -> bool {
        self.prefix == "/"
            || path
                .strip_prefix(&self.prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// The checked `--config` file.
#[derive(Debug, Default)]
pub struct ConfigFile {
    pub rules: Rules,
    pub upstreams: Vec<Upstream>,
}

impl ConfigFile {
    /// Reads and checks a configuration file's text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let rules = Rules::parse(&raw.rule)?;
        let mut upstreams = Vec::new();
        for (index, upstream) in raw.upstream.iter().enumerate() {
            let upstream = Upstream::parse(&upstream.prefix, &upstream.url)
                .map_err(|e| anyhow::anyhow!("upstream {}: {e}", index + 1))?;
            if upstreams
                .iter()
                .any(|u: &Upstream| u.prefix == upstream.prefix)
            {
                anyhow::bail!(
                    "upstream {}: prefix `{}` is given twice",
                    index + 1,
                    upstream.prefix
                );
            }
            upstreams.push(upstream);
        }
        Ok(Self { rules, upstreams })
    }

    /// Reads and checks the configuration file at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }
}

/// The rules in force, shared by every request; replaced whole on reload.
#[derive(Clone)]
pub struct Authz {
    file: Option<PathBuf>,
    rules: Arc<RwLock<Arc<Rules>>>,
}

impl Authz {
    /// `rules`, read from `file` (which a reload reads again). No file and no rules: every
    /// protected request is denied.
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
        match ConfigFile::load(file) {
            Ok(ConfigFile { rules, .. }) => {
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

    fn rules_of(text: &str) -> anyhow::Result<Rules> {
        Ok(ConfigFile::parse(text)?.rules)
    }

    #[test]
    fn a_file_with_the_tutorials_rules_loads() {
        let rules = rules_of(
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
        let error = rules_of("[[rule]]\npath = \"/a\"\npolicy = \"bypass\"\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("bogus") && error.contains("line 4"),
            "{error}"
        );
        let error = rules_of("[[rule]]\npath = \"/a\"\nany_of = [\"root\"]\n")
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
        let authz = Authz::with_rules(Some(file.clone()), ConfigFile::load(&file).unwrap().rules);
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
