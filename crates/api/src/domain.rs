//! Domain values parsed at the edge. Each type can only hold a valid value, so code that
//! receives one never re-checks it. The same parsers run in the server and in the browser.

use std::fmt;

/// Why a field was refused. The message names the field and is safe to show to users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FieldError {}

/// A username: 3 to 20 ASCII letters, digits, `.`, `_` or `-`. Case is kept for display;
/// uniqueness is case-insensitive (see [`Username::canonical`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 20;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let len = raw.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(FieldError::new(
                "username",
                format!(
                    "Username must be {} to {} characters long.",
                    Self::MIN_LEN,
                    Self::MAX_LEN
                ),
            ));
        }
        if !raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(FieldError::new(
                "username",
                "Username may only contain letters, digits, '.', '_' and '-'.",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form used for uniqueness and look-ups.
    pub fn canonical(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, trimmed and lower-cased, at most 254 characters.
///
/// Addresses are ASCII: an internationalised domain is accepted in its ASCII (`xn--`, punycode)
/// form, and non-ASCII local parts (SMTPUTF8) are refused. No invisible, formatting or
/// look-alike character can therefore make a second account that reads like an existing
/// address; invisible and control characters get a message of their own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let invalid = || FieldError::new("email", "Email must be a valid email address.");
        let value = raw.trim();
        if value.is_empty() {
            return Err(FieldError::new("email", "Email is required."));
        }
        // Checked before lower-casing, which maps some non-ASCII letters (KELVIN SIGN) to ASCII.
        if value.chars().any(is_invisible) {
            return Err(FieldError::new(
                "email",
                "Email must not contain invisible, formatting or control characters.",
            ));
        }
        if !value.is_ascii() {
            return Err(FieldError::new(
                "email",
                "Email must be written in ASCII; give an internationalised domain in its \
                 xn-- (punycode) form.",
            ));
        }
        let value = value.to_ascii_lowercase();
        if value.len() > Self::MAX_LEN {
            return Err(FieldError::new(
                "email",
                format!("Email must be at most {} characters long.", Self::MAX_LEN),
            ));
        }
        let (local, domain) = value.rsplit_once('@').ok_or_else(invalid)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Self(value))
        } else {
            Err(invalid())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters that show nothing, or change how their neighbours show: controls (C0, DEL, C1),
/// Unicode format characters (general category Cf: zero-width spaces and joiners, bidi
/// embeddings, overrides and isolates, soft hyphen, tags…), variation selectors, fillers and
/// spaces other than the ASCII one. A small explicit table: the crate builds for the browser
/// too, where a full Unicode database would be dead weight.
fn is_invisible(c: char) -> bool {
    const RANGES: &[(char, char)] = &[
        ('\u{00AD}', '\u{00AD}'),   // soft hyphen
        ('\u{034F}', '\u{034F}'),   // combining grapheme joiner
        ('\u{0600}', '\u{0605}'),   // Arabic number signs
        ('\u{061C}', '\u{061C}'),   // Arabic letter mark
        ('\u{06DD}', '\u{06DD}'),   // Arabic end of ayah
        ('\u{070F}', '\u{070F}'),   // Syriac abbreviation mark
        ('\u{0890}', '\u{0891}'),   // Arabic pound and piastre marks above
        ('\u{08E2}', '\u{08E2}'),   // Arabic disputed end of ayah
        ('\u{115F}', '\u{1160}'),   // Hangul fillers
        ('\u{17B4}', '\u{17B5}'),   // Khmer inherent vowels
        ('\u{180B}', '\u{180F}'),   // Mongolian variation selectors, vowel separator
        ('\u{200B}', '\u{200F}'),   // zero-width space, (non-)joiner, LRM, RLM
        ('\u{2028}', '\u{202E}'),   // line/paragraph separators, bidi embeddings, overrides
        ('\u{2060}', '\u{206F}'),   // word joiner, invisible operators, bidi isolates
        ('\u{3164}', '\u{3164}'),   // Hangul filler
        ('\u{FE00}', '\u{FE0F}'),   // variation selectors
        ('\u{FEFF}', '\u{FEFF}'),   // zero-width no-break space (BOM)
        ('\u{FFA0}', '\u{FFA0}'),   // halfwidth Hangul filler
        ('\u{FFF9}', '\u{FFFB}'),   // interlinear annotation
        ('\u{110BD}', '\u{110BD}'), // Kaithi number sign
        ('\u{110CD}', '\u{110CD}'), // Kaithi number sign above
        ('\u{13430}', '\u{1343F}'), // Egyptian hieroglyph format controls
        ('\u{1BCA0}', '\u{1BCA3}'), // shorthand format controls
        ('\u{1D173}', '\u{1D17A}'), // musical symbol format controls
        ('\u{E0001}', '\u{E0001}'), // language tag
        ('\u{E0020}', '\u{E007F}'), // tag characters
        ('\u{E0100}', '\u{E01EF}'), // variation selectors supplement
    ];
    c.is_control()
        || (c.is_whitespace() && c != ' ')
        || RANGES.iter().any(|&(low, high)| (low..=high).contains(&c))
}

/// A new password: 8 to 128 characters, no composition rules. `Debug` never shows it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_LEN: usize = 8;
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let len = raw.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(FieldError::new(
                "password",
                format!(
                    "Password must be {} to {} characters long.",
                    Self::MIN_LEN,
                    Self::MAX_LEN
                ),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// The three roles of the tutorial. Roles do not imply each other: an admin who is not also a
/// moderator cannot read moderator content, exactly as in the tutorial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    User,
    Moderator,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::User, Role::Moderator, Role::Admin];

    /// Parses a role name as the tutorial spells it (`user`, `moderator`, `admin`).
    /// The error carries the name as given, for "Role does not exist = <role>".
    pub fn parse(raw: &str) -> Result<Self, UnknownRole> {
        match raw {
            "user" => Ok(Role::User),
            "moderator" => Ok(Role::Moderator),
            "admin" => Ok(Role::Admin),
            other => Err(UnknownRole(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Moderator => "moderator",
            Role::Admin => "admin",
        }
    }

    /// The tutorial's authority name, e.g. `ROLE_ADMIN`.
    pub fn authority(self) -> &'static str {
        match self {
            Role::User => "ROLE_USER",
            Role::Moderator => "ROLE_MODERATOR",
            Role::Admin => "ROLE_ADMIN",
        }
    }

    /// Parses `ROLE_ADMIN` back into a role.
    pub fn from_authority(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.authority() == raw)
    }

    /// Display name as used in the tutorial's messages ("Require Moderator Role!").
    pub fn title(self) -> &'static str {
        match self {
            Role::User => "User",
            Role::Moderator => "Moderator",
            Role::Admin => "Admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRole(pub String);

impl fmt::Display for UnknownRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Failed! Role does not exist = {}", self.0)
    }
}

impl std::error::Error for UnknownRole {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_rules() {
        for ok in ["abc", "john.doe", "A_b-c.9", "x".repeat(20).as_str()] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "",
            "x".repeat(21).as_str(),
            "john doe",
            "jöhn",
            "a/b",
            "ab\0",
        ] {
            let err = Username::parse(bad).unwrap_err();
            assert_eq!(err.field, "username", "{bad}");
        }
        assert_eq!(
            Username::parse("MiXeD").unwrap().canonical(),
            Username::parse("mixed").unwrap().canonical()
        );
    }

    #[test]
    fn emails_are_trimmed_lower_cased_and_checked() {
        assert_eq!(
            Email::parse("  Jane.Doe@Example.COM ").unwrap().as_str(),
            "jane.doe@example.com"
        );
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@-b.com",
            "a..b@c.com",
            "a@b..com",
        ] {
            assert_eq!(Email::parse(bad).unwrap_err().field, "email", "{bad}");
        }
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(63));
        assert!(Email::parse(&long).is_ok());
        let too_long = format!("a@{}.com", vec!["b".repeat(60); 5].join("."));
        assert!(too_long.len() > 254);
        assert!(Email::parse(&too_long).is_err());
    }

    #[test]
    fn emails_refuse_invisible_and_control_characters() {
        let invisible = "Email must not contain invisible, formatting or control characters.";
        for c in [
            '\u{200B}',  // zero-width space
            '\u{200C}',  // zero-width non-joiner
            '\u{200D}',  // zero-width joiner
            '\u{200E}',  // left-to-right mark
            '\u{202E}',  // right-to-left override
            '\u{2066}',  // left-to-right isolate
            '\u{2069}',  // pop directional isolate
            '\u{2060}',  // word joiner
            '\u{FEFF}',  // zero-width no-break space
            '\u{00AD}',  // soft hyphen
            '\u{0085}',  // C1: next line
            '\u{009B}',  // C1: control sequence introducer
            '\u{0000}',  // C0: NUL
            '\u{001B}',  // C0: escape
            '\u{007F}',  // DEL
            '\u{00A0}',  // no-break space
            '\u{3000}',  // ideographic space
            '\u{3164}',  // Hangul filler
            '\u{FE0F}',  // variation selector
            '\u{E0041}', // tag letter A
        ] {
            for raw in [
                format!("admin{c}@example.com"),
                format!("ad{c}min@example.com"),
                format!("admin@exa{c}mple.com"),
            ] {
                let err = Email::parse(&raw).unwrap_err();
                assert_eq!(err.field, "email");
                assert_eq!(err.message, invisible, "U+{:04X}", u32::from(c));
            }
        }
    }

    #[test]
    fn emails_are_ascii_with_internationalised_domains_in_punycode() {
        let ascii_only = "Email must be written in ASCII; give an internationalised domain in its \
                          xn-- (punycode) form.";
        assert_eq!(
            Email::parse("jane@xn--bcher-kva.example").unwrap().as_str(),
            "jane@xn--bcher-kva.example"
        );
        for bad in [
            "jane@bücher.example",
            "jöhn@example.com",
            // Look-alikes of `admin@example.com`: Cyrillic а, fullwidth letters, KELVIN SIGN
            // (which lower-cases to an ASCII k).
            "\u{0430}dmin@example.com",
            "ａdmin@example.com",
            "admin@\u{212A}example.com",
        ] {
            let err = Email::parse(bad).unwrap_err();
            assert_eq!(err.message, ascii_only, "{bad}");
        }
        // Surrounding whitespace is trimmed; the address itself is unchanged.
        assert_eq!(
            Email::parse("\tadmin@example.com \n").unwrap().as_str(),
            "admin@example.com"
        );
    }

    #[test]
    fn passwords_are_length_checked_and_never_printed() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"p".repeat(129)).is_err());
        let pw = Password::parse("correct horse battery").unwrap();
        assert_eq!(format!("{pw:?}"), "Password(***)");
        // Characters, not bytes: 8 multi-byte characters are fine.
        assert!(Password::parse("ééééééééé").is_ok());
    }

    #[test]
    fn roles_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
            assert_eq!(Role::from_authority(role.authority()), Some(role));
        }
        assert_eq!(
            Role::parse("root").unwrap_err().to_string(),
            "Failed! Role does not exist = root"
        );
    }
}
