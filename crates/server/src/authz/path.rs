//! Paths as the rules see them: request paths normalised the way the protected service will read
//! them, and patterns of whole segments (`/api/orders/**`).
//!
//! A rule must judge the path the upstream will serve, not the bytes the client sent: `/public/
//! ../admin`, `/public/%2e%2e/admin` and `//admin` all reach `/admin` on most servers. So a
//! request path is percent-decoded segment by segment, `.` and empty segments are dropped and
//! `..` removes the segment before it, and the rules match what is left. Paths that servers read
//! differently from one another (an encoded `/` or `\` inside a segment, a NUL, `..;` as Java
//! servers read it, bytes that are not UTF-8) are refused rather than guessed at.

use std::{borrow::Cow, fmt};

use percent_encoding::percent_decode_str;

/// Most segments a pattern or a request path may have.
const MAX_SEGMENTS: usize = 64;
// The matcher keeps every path length up to this in one u128.
const _: () = assert!(MAX_SEGMENTS < 127);

/// A request path, normalised (see the module documentation): its decoded segments, borrowed
/// from the request where no decoding was needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath<'a>(Vec<Cow<'a, str>>);

/// Why a request path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with `/`")]
    NotAbsolute,
    #[error(
        "the path is ambiguous (an encoded `/`, `\\`, NUL or `..;`, or bytes that are not UTF-8)"
    )]
    Ambiguous,
    #[error("the path has too many segments")]
    TooLong,
}

impl<'a> RequestPath<'a> {
    /// Parses the path part of a URL (no query, no fragment).
    pub fn parse(raw: &'a str) -> Result<Self, PathError> {
        let rest = raw.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
        let mut segments: Vec<Cow<'a, str>> = Vec::new();
        for raw_segment in rest.split('/') {
            // Most segments have nothing to decode or look into: taken as they are.
            let plain = !raw_segment
                .bytes()
                .any(|b| matches!(b, b'%' | b';' | b'\\' | 0));
            let segment = if plain {
                Cow::Borrowed(raw_segment)
            } else {
                decoded_segment(raw_segment)?
            };
            match &*segment {
                "" | "." => {}
                ".." => {
                    segments.pop();
                }
                _ => {
                    if segments.len() == MAX_SEGMENTS {
                        return Err(PathError::TooLong);
                    }
                    segments.push(segment);
                }
            }
        }
        Ok(Self(segments))
    }

    pub fn segments(&self) -> &[Cow<'a, str>] {
        &self.0
    }
}

/// A segment with something to decode or look into: decoded, or refused when servers would
/// read it differently from one another.
fn decoded_segment(raw: &str) -> Result<Cow<'_, str>, PathError> {
    let segment = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| PathError::Ambiguous)?;
    if segment.contains(['/', '\\', '\0']) {
        return Err(PathError::Ambiguous);
    }
    // Java servers drop what follows `;` in a segment: `..;` is `..` to them.
    let before_params = segment.split(';').next().unwrap_or_default();
    if segment.contains(';') && matches!(before_params, "." | "..") {
        return Err(PathError::Ambiguous);
    }
    Ok(segment)
}

impl fmt::Display for RequestPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("/");
        }
        for segment in &self.0 {
            write!(f, "/{segment}")?;
        }
        Ok(())
    }
}

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Exactly this segment (decoded).
    Literal(String),
    /// `*`: any one segment.
    One,
    /// `**`: any number of segments, none included.
    Any,
}

/// A path pattern of whole segments: literals, `*` for one segment, `**` for any number of them
/// (none included, so `/api/orders/**` also matches `/api/orders`). Written as the path it
/// matches, e.g. `/api/test/all` or `/api/orders/*/items/**`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
    segments: Vec<Segment>,
}

impl PathPattern {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let rest = raw
            .strip_prefix('/')
            .ok_or_else(|| format!("path `{raw}` must start with `/`"))?;
        let mut segments = Vec::new();
        for part in rest.split('/').filter(|part| !part.is_empty()) {
            let segment = match part {
                "**" => Segment::Any,
                "*" => Segment::One,
                _ if part.contains('*') => {
                    return Err(format!(
                        "path `{raw}`: `*` and `**` stand for whole segments (`/a/*/b`, `/a/**`), \
                         not parts of one"
                    ));
                }
                _ => {
                    let slashed = format!("/{part}");
                    let decoded =
                        RequestPath::parse(&slashed).map_err(|e| format!("path `{raw}`: {e}"))?;
                    match decoded.0.as_slice() {
                        [one] => Segment::Literal(one.to_string()),
                        _ => {
                            return Err(format!(
                                "path `{raw}`: `{part}` is not a plain segment (`.` and `..` are \
                                 not allowed in patterns)"
                            ));
                        }
                    }
                }
            };
            segments.push(segment);
        }
        if segments.len() > MAX_SEGMENTS {
            return Err(format!("path `{raw}` has too many segments"));
        }
        Ok(Self {
            text: raw.to_owned(),
            segments,
        })
    }

    /// The pattern that matches every path.
    pub fn everything() -> Self {
        Self {
            text: "/**".to_owned(),
            segments: vec![Segment::Any],
        }
    }

    pub fn matches(&self, path: &RequestPath) -> bool {
        matches(&self.segments, path.segments())
    }

    /// Whether every path `other` matches is also matched by `self`. Exact for these patterns;
    /// used to find rules that an earlier rule leaves nothing to.
    pub fn covers(&self, other: &PathPattern) -> bool {
        covers(&self.segments, &other.segments)
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn matches(pattern: &[Segment], path: &[Cow<'_, str>]) -> bool {
    // Bit j of `reachable`: the pattern so far can match the first j segments of the path. A
    // request path has at most MAX_SEGMENTS (64), so every length fits in a u128; no
    // allocation, as this runs on every check.
    let n = path.len();
    debug_assert!(
        n <= MAX_SEGMENTS,
        "RequestPath::parse keeps paths this short"
    );
    let lengths: u128 = (1u128 << (n + 1)) - 1;
    let mut reachable: u128 = 1;
    for segment in pattern {
        reachable = match segment {
            // Every length from the shortest reachable one on (none if none is).
            Segment::Any => {
                let shortest = reachable & reachable.wrapping_neg();
                lengths & !shortest.wrapping_sub(1)
            }
            Segment::One => (reachable << 1) & lengths,
            Segment::Literal(literal) => {
                let mut next = 0;
                let mut candidates = (reachable << 1) & lengths;
                while candidates != 0 {
                    let j = candidates.trailing_zeros() as usize;
                    if path[j - 1] == literal.as_str() {
                        next |= 1 << j;
                    }
                    candidates &= candidates - 1;
                }
                next
            }
        };
        if reachable == 0 {
            return false;
        }
    }
    (reachable >> n) & 1 == 1
}

/// `a` covers `b` when every path `b` matches, `a` matches too. Dynamic programming over
/// (segments of `a` left, segments of `b` left): `a`'s `**` may absorb any of `b`'s segments,
/// `a`'s `*` one literal or `*`, a literal only the same literal.
fn covers(a: &[Segment], b: &[Segment]) -> bool {
    // covered[i][j]: a[i..] covers b[j..].
    let mut covered = vec![vec![false; b.len() + 1]; a.len() + 1];
    covered[a.len()][b.len()] = true;
    for i in (0..a.len()).rev() {
        for j in (0..=b.len()).rev() {
            covered[i][j] = match &a[i] {
                Segment::Any => covered[i + 1][j] || (j < b.len() && covered[i][j + 1]),
                Segment::One => {
                    j < b.len()
                        && matches!(b[j], Segment::One | Segment::Literal(_))
                        && covered[i + 1][j + 1]
                }
                Segment::Literal(literal) => {
                    j < b.len()
                        && matches!(&b[j], Segment::Literal(other) if other == literal)
                        && covered[i + 1][j + 1]
                }
            };
        }
    }
    covered[0][0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(raw: &str) -> RequestPath<'_> {
        RequestPath::parse(raw).unwrap()
    }

    fn pattern(raw: &str) -> PathPattern {
        PathPattern::parse(raw).unwrap()
    }

    #[test]
    fn request_paths_are_read_as_servers_read_them() {
        for (raw, normal) in [
            ("/", "/"),
            ("/api/test/all", "/api/test/all"),
            ("/api//test/./all/", "/api/test/all"),
            ("/public/../admin", "/admin"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E%2E/%2e/admin", "/admin"),
            ("/../../admin", "/admin"),
            ("/caf%C3%A9", "/café"),
            ("/a%20b", "/a b"),
        ] {
            assert_eq!(path(raw).to_string(), normal, "{raw}");
        }
        for raw in [
            "/a%2fb",
            "/a%2Fb",
            "/a%5cb",
            "/a%00b",
            "/%ff",
            "/public/..;/admin",
            "/public/.;x/admin",
        ] {
            assert_eq!(RequestPath::parse(raw), Err(PathError::Ambiguous), "{raw}");
        }
        assert_eq!(RequestPath::parse("admin"), Err(PathError::NotAbsolute));
        let long = "/a".repeat(MAX_SEGMENTS + 1);
        assert_eq!(RequestPath::parse(&long), Err(PathError::TooLong));
    }

    #[test]
    fn patterns_match_whole_segments() {
        let orders = pattern("/api/orders/**");
        for yes in [
            "/api/orders",
            "/api/orders/",
            "/api/orders/1",
            "/api/orders/1/items",
        ] {
            assert!(orders.matches(&path(yes)), "{yes}");
        }
        for no in ["/api/ordersx", "/api", "/api/order/1", "/"] {
            assert!(!orders.matches(&path(no)), "{no}");
        }
        let items = pattern("/api/orders/*/items");
        assert!(items.matches(&path("/api/orders/7/items")));
        assert!(!items.matches(&path("/api/orders/items")));
        assert!(!items.matches(&path("/api/orders/7/8/items")));
        let exact = pattern("/api/test/all");
        assert!(exact.matches(&path("/api/test/all/")));
        assert!(!exact.matches(&path("/api/test/all/x")));
        assert!(pattern("/**").matches(&path("/")));
        assert!(pattern("/").matches(&path("/")));
        assert!(!pattern("/").matches(&path("/a")));
        assert!(pattern("/a/**/z").matches(&path("/a/z")));
        assert!(pattern("/a/**/z").matches(&path("/a/b/c/z")));
        assert!(!pattern("/a/**/z").matches(&path("/a/b/c")));
        // Literals are compared decoded, as paths are.
        assert!(pattern("/caf%C3%A9").matches(&path("/café")));
        // The longest paths, and `**` more than once.
        let longest = format!("{}/a", "/b".repeat(MAX_SEGMENTS - 1));
        assert!(pattern("/**").matches(&path(&longest)));
        assert!(pattern("/**/a").matches(&path(&longest)));
        assert!(pattern("/b/**/b/a").matches(&path(&longest)));
        assert!(pattern("/**/b/**/a/**").matches(&path(&longest)));
        assert!(!pattern("/**/a/b").matches(&path(&longest)));
        assert!(!pattern("/*").matches(&path(&longest)));
        assert!(pattern(&longest).matches(&path(&longest)));
        assert!(pattern("/*/*/**").matches(&path("/x/y")));
        assert!(!pattern("/*/*/**").matches(&path("/x")));
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        for raw in ["api", "/api/ord*", "/a/**x", "/a/../b", "/a/%2f"] {
            assert!(PathPattern::parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn covering_is_exact_for_segment_patterns() {
        for (a, b) in [
            ("/**", "/api/test/all"),
            ("/api/**", "/api/orders/*/items"),
            ("/api/**", "/api"),
            ("/api/*", "/api/orders"),
            ("/api/*/**", "/api/*/x/**"),
            ("/a/**/z", "/a/b/z"),
            ("/a/**", "/a/**/z"),
            ("/api/test/all", "/api/test/all/"),
        ] {
            assert!(pattern(a).covers(&pattern(b)), "{a} covers {b}");
        }
        for (a, b) in [
            ("/api/*", "/api/**"),
            ("/api/*", "/api"),
            ("/api/orders", "/api/*"),
            ("/a/**/z", "/a/**"),
            ("/api/test/all", "/api/test/user"),
            ("/a/*/z", "/a/**/z"),
        ] {
            assert!(!pattern(a).covers(&pattern(b)), "{a} does not cover {b}");
        }
    }
}
