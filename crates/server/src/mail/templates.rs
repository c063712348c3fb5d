//! The messages Tollgate sends, from the templates in `templates/mail/` (compiled in): for
//! each, `<name>.txt` (a `Subject:` line, a blank line, the plain-text body) and `<name>.html`
//! (the HTML body, placed in `layout.html`). `{{name}}` is replaced by a value, HTML-escaped
//! in the HTML part.

/// A message Tollgate sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// Confirms the address given at sign-up (or asked for again): code and link.
    VerifyEmail,
    /// A forgotten password: code and link.
    ResetPassword,
    /// An account an admin created: a link to choose the first password.
    SetPassword,
    /// A new address, to confirm before it replaces the current one.
    ConfirmNewEmail,
    /// To the old address once it was replaced, with a link to report the change.
    EmailChanged,
}

impl Template {
    pub const ALL: [Template; 5] = [
        Template::VerifyEmail,
        Template::ResetPassword,
        Template::SetPassword,
        Template::ConfirmNewEmail,
        Template::EmailChanged,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Template::VerifyEmail => "verify_email",
            Template::ResetPassword => "reset_password",
            Template::SetPassword => "set_password",
            Template::ConfirmNewEmail => "confirm_new_email",
            Template::EmailChanged => "email_changed",
        }
    }

    fn sources(self) -> (&'static str, &'static str) {
        macro_rules! sources {
            ($name:literal) => {
                (
                    include_str!(concat!("../../templates/mail/", $name, ".txt")),
                    include_str!(concat!("../../templates/mail/", $name, ".html")),
                )
            };
        }
        match self {
            Template::VerifyEmail => sources!("verify_email"),
            Template::ResetPassword => sources!("reset_password"),
            Template::SetPassword => sources!("set_password"),
            Template::ConfirmNewEmail => sources!("confirm_new_email"),
            Template::EmailChanged => sources!("email_changed"),
        }
    }
}

const LAYOUT: &str = include_str!("../../templates/mail/layout.html");

/// A message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Renders `template` with `values` (name, value). `product` and `public_url` are expected
/// among them; a placeholder with no value is left as written.
pub fn render(template: Template, values: &[(&str, &str)]) -> Rendered {
    let (text_source, html_source) = template.sources();
    let (subject_line, body) = text_source.split_once("\n\n").unwrap_or(("", text_source));
    let subject = fill(
        subject_line.trim().trim_start_matches("Subject:").trim(),
        values,
        |v| v.to_owned(),
    );
    let text = fill(body, values, |v| v.to_owned());
    let body_html = fill(html_source, values, escape_html);
    let mut with_layout: Vec<(&str, &str)> = values.to_vec();
    with_layout.push(("subject", &subject));
    let layout = fill(LAYOUT, &with_layout, escape_html);
    // The body is HTML already; it goes in last, unescaped, so nothing inside it is filled twice.
    let html = layout.replacen("{{body}}", &body_html, 1);
    Rendered {
        subject,
        text,
        html,
    }
}

/// Replaces each `{{name}}` in `source` by its value, passed through `escape`. `{{body}}` is
/// left for the layout.
fn fill(source: &str, values: &[(&str, &str)], escape: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(source.len() + 64);
    let mut rest = source;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        match values.iter().find(|(n, _)| *n == name) {
            Some((_, value)) => out.push_str(&escape(value)),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn escape_html(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: [(&str, &str); 8] = [
        ("product", "Acme <Auth>"),
        ("public_url", "https://auth.example.com"),
        ("username", "alice"),
        ("email", "alice@example.com"),
        ("new_email", "alice@example.org"),
        ("code", "1234 5678"),
        (
            "link",
            "https://auth.example.com/reset-password?token=abc&x=1",
        ),
        ("valid_for", "30 minutes"),
    ];

    #[test]
    fn every_template_fills_every_placeholder() {
        for template in Template::ALL {
            let rendered = render(template, &VALUES);
            for part in [&rendered.subject, &rendered.text, &rendered.html] {
                assert!(!part.contains("{{"), "{}: {part}", template.name());
            }
            assert!(!rendered.subject.is_empty(), "{}", template.name());
            assert!(rendered.text.contains("alice"), "{}", template.name());
            assert!(rendered.html.starts_with("<!doctype html>"));
        }
    }

    #[test]
    fn values_are_escaped_in_html_only() {
        let rendered = render(Template::ResetPassword, &VALUES);
        assert!(rendered.subject.contains("Acme <Auth>"));
        assert!(rendered.html.contains("Acme &lt;Auth&gt;"));
        assert!(!rendered.html.contains("Acme <Auth>"));
        assert!(
            rendered
                .html
                .contains("href=\"https://auth.example.com/reset-password?token=abc&amp;x=1\"")
        );
        assert!(
            rendered
                .text
                .contains("https://auth.example.com/reset-password?token=abc&x=1")
        );
        assert!(rendered.text.contains("1234 5678"));
        assert!(!rendered.text.starts_with("Subject"));
    }

    #[test]
    fn a_value_is_never_filled_again() {
        let rendered = render(
            Template::VerifyEmail,
            &[("username", "{{code}}"), ("code", "42")],
        );
        assert!(rendered.text.contains("Hello {{code}},"));
    }

    #[test]
    fn a_missing_value_stays_visible() {
        let rendered = render(Template::VerifyEmail, &[]);
        assert!(rendered.text.contains("{{code}}"));
    }
}
