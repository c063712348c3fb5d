//! Access rules: an ordered list, the first rule that matches a request decides, and a request
//! no rule matches is denied.
//!
//! A rule matches a host (optional), a path pattern (see [`PathPattern`]) and methods
//! (optional; `GET` includes `HEAD`), and its policy is `bypass` (public), `authenticated` (any
//! valid credentials) or a list of roles of which the caller needs one (`any_of`). Rules are
//! checked when loaded: an unknown role, a bad pattern, or a rule that an earlier rule leaves
//! nothing to (it could never match) is an error naming the rule's position.

use std::fmt;

use api::Role;
use axum::http::Method;
use serde::Deserialize;

use super::path::{PathPattern, RequestPath};
use crate::tokens::RoleSet;

/// A rule as written in the configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub host: Option<String>,
    pub path: Option<String>,
    pub methods: Option<Vec<String>>,
    pub policy: Option<String>,
    pub any_of: Option<Vec<String>>,
}

/// What a matching rule asks of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// Public: no credentials needed (valid ones are still passed on as identity).
    Bypass,
    /// Any valid credentials.
    Authenticated,
    /// Valid credentials of a user with at least one of these roles.
    AnyOf(Vec<Role>),
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::Bypass => f.write_str("bypass"),
            Policy::Authenticated => f.write_str("authenticated"),
            Policy::AnyOf(roles) => {
                let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                write!(f, "any_of [{}]", names.join(", "))
            }
        }
    }
}

/// A host to match: its name, lower case, and a port if the rule gives one (without a port,
/// any port matches).
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostMatch {
    name: String,
    port: Option<u16>,
}

impl HostMatch {
    fn parse(raw: &str) -> Result<Self, String> {
        let (name, port) = split_host(raw).ok_or_else(|| format!("host `{raw}` is not valid"))?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '[' | ']' | ':'))
        {
            return Err(format!(
                "host `{raw}` is not valid (a name such as `app.example.com`, optionally \
                 with `:port`)"
            ));
        }
        Ok(Self { name, port })
    }

    fn matches(&self, host: &str) -> bool {
        match split_host(host) {
            Some((name, port)) => name == self.name && self.port.is_none_or(|p| Some(p) == port),
            None => false,
        }
    }

    fn covers(&self, other: &HostMatch) -> bool {
        self.name == other.name && self.port.is_none_or(|p| Some(p) == other.port)
    }
}

/// `Example.COM.:8080` → (`example.com`, Some(8080)); IPv6 literals keep their brackets.
fn split_host(raw: &str) -> Option<(String, Option<u16>)> {
    let raw = raw.trim();
    let (name, port) = if raw.starts_with('[') {
        match raw.rsplit_once("]:") {
            Some((name, port)) => (format!("{name}]"), Some(port)),
            None => (raw.to_owned(), None),
        }
    } else {
        match raw.rsplit_once(':') {
            Some((name, port)) => (name.to_owned(), Some(port)),
            None => (raw.to_owned(), None),
        }
    };
    let port = match port {
        Some(port) => Some(port.parse().ok()?),
        None => None,
    };
    Some((name.trim_end_matches('.').to_ascii_lowercase(), port))
}

/// One checked rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its place in the file, from 1.
    pub position: usize,
    host: Option<HostMatch>,
    path: PathPattern,
    /// `None`: every method.
    methods: Option<Vec<Method>>,
    pub policy: Policy,
}

impl Rule {
    fn parse(position: usize, raw: &RawRule) -> Result<Self, String> {
        let host = raw.host.as_deref().map(HostMatch::parse).transpose()?;
        let path = match &raw.path {
            Some(path) => PathPattern::parse(path)?,
            None => PathPattern::everything(),
        };
        let methods = match &raw.methods {
            None => None,
            Some(names) if names.is_empty() => {
                return Err("`methods` is empty: leave it out to match every method".to_owned());
            }
            Some(names) => {
                let mut methods = Vec::new();
                for name in names {
                    let method = Method::from_bytes(name.to_ascii_uppercase().as_bytes())
                        .map_err(|_| format!("`{name}` is not an HTTP method"))?;
                    if method == Method::GET
                        && !names.iter().any(|n| n.eq_ignore_ascii_case("HEAD"))
                    {
                        methods.push(Method::HEAD);
                    }
                    methods.push(method);
                }
                methods.sort_by(|a, b| a.as_str().cmp(b.as_str()));
                methods.dedup();
                Some(methods)
            }
        };
        let policy = match (raw.policy.as_deref(), &raw.any_of) {
            (Some("bypass"), None) => Policy::Bypass,
            (Some("authenticated"), None) => Policy::Authenticated,
            (None | Some("roles"), Some(names)) => {
                if names.is_empty() {
                    return Err("`any_of` is empty: no one could ever pass".to_owned());
                }
                let mut roles = Vec::new();
                for name in names {
                    let role = Role::parse(name).map_err(|_| {
                        format!("unknown role `{name}` (the roles are user, moderator and admin)")
                    })?;
                    if !roles.contains(&role) {
                        roles.push(role);
                    }
                }
                Policy::AnyOf(roles)
            }
            (Some("bypass" | "authenticated"), Some(_)) => {
                return Err("`any_of` goes with no `policy` (or `policy = \"roles\"`)".to_owned());
            }
            (Some("roles"), None) => return Err("`policy = \"roles\"` needs `any_of`".to_owned()),
            (Some(other), _) => {
                return Err(format!(
                    "unknown policy `{other}` (bypass, authenticated, or roles with `any_of`)"
                ));
            }
            (None, None) => {
                return Err(
                    "no policy: give `policy = \"bypass\"`, `policy = \"authenticated\"` or \
                     `any_of = [roles]`"
                        .to_owned(),
                );
            }
        };
        Ok(Self {
            position,
            host,
            path,
            methods,
            policy,
        })
    }

    fn matches(&self, target: &Target<'_>) -> bool {
        self.host
            .as_ref()
            .is_none_or(|host| target.host.is_some_and(|h| host.matches(h)))
            && self
                .methods
                .as_ref()
                .is_none_or(|methods| methods.contains(target.method))
            && self.path.matches(target.path)
    }

    /// Whether every request `later` matches is matched by `self` first.
    fn shadows(&self, later: &Rule) -> bool {
        let host = match (&self.host, &later.host) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(ours), Some(theirs)) => ours.covers(theirs),
        };
        let methods = match (&self.methods, &later.methods) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(ours), Some(theirs)) => theirs.iter().all(|m| ours.contains(m)),
        };
        host && methods && self.path.covers(&later.path)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule {}: ", self.position)?;
        if let Some(host) = &self.host {
            write!(f, "host {}", host.name)?;
            if let Some(port) = host.port {
                write!(f, ":{port}")?;
            }
            f.write_str(", ")?;
        }
        write!(f, "path {}", self.path)?;
        if let Some(methods) = &self.methods {
            let names: Vec<&str> = methods.iter().map(Method::as_str).collect();
            write!(f, ", methods {}", names.join(" "))?;
        }
        write!(f, " → {}", self.policy)
    }
}

/// A rule that failed its check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {position}: {message}")]
pub struct RuleError {
    pub position: usize,
    pub message: String,
}

/// A request as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The `Host` the client asked for, if known.
    pub host: Option<&'a str>,
    pub method: &'a Method,
    pub path: &'a RequestPath<'a>,
}

/// What the rules make of a request and its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    /// The rule wants a signed-in caller and there is none (or the credentials are not valid).
    NeedsCredentials,
    /// The caller may not: a role is missing, or no rule matched.
    Forbidden,
}

/// The outcome and the rule that decided it (`None`: no rule matched, so denied).
#[derive(Debug, Clone, Copy)]
pub struct Decision<'r> {
    pub rule: Option<&'r Rule>,
    pub outcome: Outcome,
}

/// The checked rules, in order.
#[derive(Debug, Clone, Default)]
pub struct Rules(Vec<Rule>);

impl Rules {
    /// Checks the rules in order; the first problem found is the error.
    pub fn parse(raw: &[RawRule]) -> Result<Self, RuleError> {
        let mut rules: Vec<Rule> = Vec::with_capacity(raw.len());
        for (index, raw_rule) in raw.iter().enumerate() {
            let position = index + 1;
            let rule = Rule::parse(position, raw_rule)
                .map_err(|message| RuleError { position, message })?;
            if let Some(earlier) = rules.iter().find(|earlier| earlier.shadows(&rule)) {
                return Err(RuleError {
                    position,
                    message: format!(
                        "can never match: rule {} before it matches every request it does \
                         ({earlier})",
                        earlier.position
                    ),
                });
            }
            rules.push(rule);
        }
        Ok(Self(rules))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first matching rule's verdict for a caller with `roles` (`None`: no valid
    /// credentials).
    pub fn decide(&self, target: &Target<'_>, roles: Option<RoleSet>) -> Decision<'_> {
        let Some(rule) = self.0.iter().find(|rule| rule.matches(target)) else {
            return Decision {
                rule: None,
                outcome: Outcome::Forbidden,
            };
        };
        let outcome = match (&rule.policy, roles) {
            (Policy::Bypass, _) => Outcome::Allow,
            (_, None) => Outcome::NeedsCredentials,
            (Policy::Authenticated, Some(_)) => Outcome::Allow,
            (Policy::AnyOf(wanted), Some(roles)) => {
                if wanted.iter().any(|role| roles.contains(*role)) {
                    Outcome::Allow
                } else {
                    Outcome::Forbidden
                }
            }
        };
        Decision {
            rule: Some(rule),
            outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, policy: &str) -> RawRule {
        RawRule {
            path: Some(path.to_owned()),
            policy: Some(policy.to_owned()),
            ..RawRule::default()
        }
    }

    fn roles_rule(path: &str, roles: &[&str]) -> RawRule {
        RawRule {
            path: Some(path.to_owned()),
            any_of: Some(roles.iter().map(|r| (*r).to_owned()).collect()),
            ..RawRule::default()
        }
    }

    /// The tutorial's four routes as four rules.
    pub(crate) fn tutorial() -> Rules {
        Rules::parse(&[
            rule("/api/test/all", "bypass"),
            rule("/api/test/user", "authenticated"),
            roles_rule("/api/test/mod", &["moderator"]),
            roles_rule("/api/test/admin", &["admin"]),
        ])
        .unwrap()
    }

    fn decide(rules: &Rules, method: Method, path: &str, roles: Option<&[Role]>) -> Outcome {
        let path = RequestPath::parse(path).unwrap();
        let target = Target {
            host: Some("app.example.com"),
            method: &method,
            path: &path,
        };
        rules
            .decide(&target, roles.map(|r| r.iter().copied().collect()))
            .outcome
    }

    #[test]
    fn the_tutorials_routes_are_four_rules() {
        use Outcome::*;
        let rules = tutorial();
        let user: &[Role] = &[Role::User];
        let moderator: &[Role] = &[Role::User, Role::Moderator];
        let admin: &[Role] = &[Role::User, Role::Admin];
        for (path, anonymous, as_user, as_moderator, as_admin) in [
            ("/api/test/all", Allow, Allow, Allow, Allow),
            ("/api/test/user", NeedsCredentials, Allow, Allow, Allow),
            (
                "/api/test/mod",
                NeedsCredentials,
                Forbidden,
                Allow,
                Forbidden,
            ),
            (
                "/api/test/admin",
                NeedsCredentials,
                Forbidden,
                Forbidden,
                Allow,
            ),
            (
                "/api/test/other",
                Forbidden,
                Forbidden,
                Forbidden,
                Forbidden,
            ),
            (
                "/api/test/all/../admin",
                NeedsCredentials,
                Forbidden,
                Forbidden,
                Allow,
            ),
        ] {
            assert_eq!(decide(&rules, Method::GET, path, None), anonymous, "{path}");
            assert_eq!(
                decide(&rules, Method::GET, path, Some(user)),
                as_user,
                "{path}"
            );
            assert_eq!(
                decide(&rules, Method::GET, path, Some(moderator)),
                as_moderator,
                "{path}"
            );
            assert_eq!(
                decide(&rules, Method::GET, path, Some(admin)),
                as_admin,
                "{path}"
            );
        }
    }

    #[test]
    fn hosts_and_methods_narrow_a_rule() {
        let rules = Rules::parse(&[
            RawRule {
                host: Some("App.Example.com".to_owned()),
                path: Some("/api/orders/**".to_owned()),
                methods: Some(vec!["get".to_owned()]),
                policy: Some("authenticated".to_owned()),
                ..RawRule::default()
            },
            rule("/api/orders/**", "bypass"),
        ])
        .unwrap();
        let path = RequestPath::parse("/api/orders/7").unwrap();
        let at = |host: &'static str, method: Method| {
            let target = Target {
                host: Some(host),
                method: &method,
                path: &path,
            };
            rules.decide(&target, None).rule.map(|r| r.position)
        };
        assert_eq!(at("app.example.com", Method::GET), Some(1));
        assert_eq!(at("APP.example.com.:8443", Method::HEAD), Some(1));
        assert_eq!(at("app.example.com", Method::POST), Some(2));
        assert_eq!(at("other.example.com", Method::GET), Some(2));
    }

    #[test]
    fn bad_rules_fail_with_their_position() {
        let cases = [
            (
                vec![roles_rule("/a", &["superuser"])],
                1,
                "unknown role `superuser`",
            ),
            (
                vec![rule("/a", "bypass"), rule("/a/*x", "bypass")],
                2,
                "whole segments",
            ),
            (vec![rule("/a", "public")], 1, "unknown policy"),
            (
                vec![RawRule {
                    path: Some("/a".into()),
                    ..RawRule::default()
                }],
                1,
                "no policy",
            ),
            (
                vec![
                    rule("/api/**", "authenticated"),
                    rule("/api/orders", "bypass"),
                ],
                2,
                "never match",
            ),
            (
                vec![
                    rule("/a", "bypass"),
                    rule("/b", "bypass"),
                    rule("/a/", "bypass"),
                ],
                3,
                "rule 1",
            ),
            (
                vec![RawRule {
                    path: Some("/a".into()),
                    methods: Some(vec!["GE T".into()]),
                    policy: Some("bypass".into()),
                    ..RawRule::default()
                }],
                1,
                "not an HTTP method",
            ),
            (
                vec![RawRule {
                    host: Some("exa mple.com".into()),
                    policy: Some("bypass".into()),
                    ..RawRule::default()
                }],
                1,
                "host",
            ),
        ];
        for (raw, position, words) in cases {
            let error = Rules::parse(&raw).unwrap_err();
            assert_eq!(error.position, position, "{error}");
            assert!(error.to_string().contains(words), "{error}");
        }
    }

    #[test]
    fn narrower_rules_before_broader_ones_are_fine() {
        let rules = Rules::parse(&[
            RawRule {
                methods: Some(vec!["GET".into()]),
                ..rule("/api/**", "bypass")
            },
            rule("/api/**", "authenticated"),
            RawRule {
                host: Some("a.example.com".into()),
                ..rule("/**", "bypass")
            },
            roles_rule("/**", &["admin"]),
        ]);
        assert_eq!(rules.unwrap().len(), 4);
    }

    #[test]
    fn no_matching_rule_is_denied_even_to_admins() {
        let rules = Rules::default();
        assert_eq!(
            decide(&rules, Method::GET, "/", Some(&[Role::Admin])),
            Outcome::Forbidden
        );
    }
}
