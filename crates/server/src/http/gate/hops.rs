//! What one hop of HTTP keeps to itself (RFC 9110 §7.6), as the gate forwards a message: the
//! connection's own headers, which it drops both ways; `Via`, to which it adds itself after the
//! hops before it; and `Max-Forwards`, which it counts down on TRACE and OPTIONS.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Version, header, header::Entry};

/// The gate's name in `Via`, by which a request that comes back through it is known.
pub const VIA_NAME: &str = "tollgate";

/// The headers no hop passes on (RFC 9110 §7.6.1), besides `Connection` and those it names.
const HOP_BY_HOP: [HeaderName; 5] = [
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes `Connection`, the headers it names, and the other hop-by-hop headers. Whatever a
/// sender named goes, whoever set it: so the gate strips before it sets its own headers.
pub fn strip(headers: &mut HeaderMap) {
    if let Entry::Occupied(connection) = headers.entry(header::CONNECTION) {
        let (_, values) = connection.remove_entry_mult();
        let values: Vec<HeaderValue> = values.collect();
        for name in values
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
        {
            // By `&str`: no allocation, and a name that is not one is simply not there.
            headers.remove(name.trim());
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Whether the headers ask for a WebSocket upgrade: `Upgrade: websocket`, `Connection`
/// naming `upgrade`, and the handshake's key and version.
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("websocket"));
    let connection = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    upgrade
        && connection
        && headers.contains_key(header::SEC_WEBSOCKET_KEY)
        && headers.contains_key(header::SEC_WEBSOCKET_VERSION)
}

/// What carries a WebSocket upgrade to the next hop, exactly: set after [`strip`] on the
/// handshake and on its 101, so that nothing else a sender's `Connection` named goes along.
pub fn carry_websocket_upgrade(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

/// Whether a `Via` entry names this gate as the hop that received it.
pub fn came_through_us(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::VIA)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|entry| {
            entry
                .split_whitespace()
                .nth(1)
                .is_some_and(|received_by| received_by.eq_ignore_ascii_case(VIA_NAME))
        })
}

/// Adds this gate to `Via` with the protocol it received the message in, after every entry of
/// the hops before it (which stay as they were).
pub fn add_via(headers: &mut HeaderMap, received: Version) {
    let entry = match received {
        Version::HTTP_09 => "0.9 tollgate",
        Version::HTTP_10 => "1.0 tollgate",
        Version::HTTP_2 => "2 tollgate",
        Version::HTTP_3 => "3 tollgate",
        _ => "1.1 tollgate",
    };
    headers.append(header::VIA, HeaderValue::from_static(entry));
}

/// `Max-Forwards` of a TRACE or OPTIONS request: `true` when it is 0, so that the gate must
/// answer as the request's final recipient; otherwise counted down for the next hop.
pub fn is_last_hop(method: &Method, headers: &mut HeaderMap) -> bool {
    if method != Method::TRACE && method != Method::OPTIONS {
        return false;
    }
    // Digits only (`+3` is not a value), and a value past any real chain of proxies counts as
    // the largest one.
    let Some(left) = headers
        .get(header::MAX_FORWARDS)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
        .map(|value| value.parse::<u32>().unwrap_or(u32::MAX))
    else {
        return false;
    };
    if left == 0 {
        return true;
    }
    headers.insert(header::MAX_FORWARDS, HeaderValue::from(left - 1));
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut map = headers(&[
            ("connection", "keep-alive, X-Private"),
            ("connection", "x-other"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("x-other", "2"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-connection", "keep-alive"),
            ("upgrade", "h2c"),
            ("x-kept", "3"),
            // Not hop-by-hop (RFC 9110 §6.6.2): it announces the body's trailers.
            ("trailer", "x-checksum"),
        ]);
        strip(&mut map);
        let mut left: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["trailer", "x-kept"]);
        // Names that are not header names are no harm.
        let mut map = headers(&[("connection", "not a name, , x@y, ;"), ("x-kept", "1")]);
        strip(&mut map);
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn an_upgrade_carries_exactly_connection_upgrade_and_upgrade_websocket() {
        let mut map = headers(&[
            ("connection", "Upgrade, remote-user"),
            ("upgrade", "WebSocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
            ("keep-alive", "timeout=5"),
            ("remote-user", "root"),
        ]);
        assert!(is_websocket_upgrade(&map));
        strip(&mut map);
        carry_websocket_upgrade(&mut map);
        assert_eq!(map["connection"], "upgrade");
        assert_eq!(map["upgrade"], "websocket");
        for gone in ["keep-alive", "remote-user"] {
            assert!(map.get(gone).is_none(), "{gone}");
        }
        // h2c, or a key without the rest, is no WebSocket handshake.
        let h2c = headers(&[
            ("connection", "upgrade"),
            ("upgrade", "h2c"),
            ("sec-websocket-key", "x"),
            ("sec-websocket-version", "13"),
        ]);
        assert!(!is_websocket_upgrade(&h2c));
        let bare = headers(&[("sec-websocket-key", "x"), ("sec-websocket-version", "13")]);
        assert!(!is_websocket_upgrade(&bare));
    }

    #[test]
    fn via_keeps_the_hops_before_and_names_ours() {
        let mut map = headers(&[("via", "1.0 fred, 1.1 p.example.net"), ("via", "1.1 proxy")]);
        assert!(!came_through_us(&map));
        add_via(&mut map, Version::HTTP_11);
        let all: Vec<&str> = map
            .get_all("via")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            all,
            ["1.0 fred, 1.1 p.example.net", "1.1 proxy", "1.1 tollgate"]
        );
        assert!(came_through_us(&map));
        for (seen, ours) in [
            ("1.0 TollGate (a comment)", true),
            ("1.1 a,2 tollgate", true),
            ("1.1 tollgate:8080", false),
            ("tollgate", false),
        ] {
            let mut map = HeaderMap::new();
            map.insert(header::VIA, HeaderValue::from_str(seen).unwrap());
            assert_eq!(came_through_us(&map), ours, "{seen}");
        }
    }

    #[test]
    fn max_forwards_counts_down_on_trace_and_options_only() {
        let mut map = headers(&[("max-forwards", "2")]);
        assert!(!is_last_hop(&Method::OPTIONS, &mut map));
        assert_eq!(map["max-forwards"], "1");
        assert!(!is_last_hop(&Method::TRACE, &mut map));
        assert_eq!(map["max-forwards"], "0");
        assert!(is_last_hop(&Method::OPTIONS, &mut map));
        assert!(!is_last_hop(&Method::GET, &mut map));
        for odd in ["lots", "+3", "-1", ""] {
            let mut map = HeaderMap::new();
            map.insert(header::MAX_FORWARDS, HeaderValue::from_str(odd).unwrap());
            assert!(!is_last_hop(&Method::TRACE, &mut map), "{odd}");
            assert_eq!(map[header::MAX_FORWARDS], odd);
        }
        let mut huge = headers(&[("max-forwards", "99999999999999999999")]);
        assert!(!is_last_hop(&Method::TRACE, &mut huge));
        assert_eq!(huge["max-forwards"], (u32::MAX - 1).to_string().as_str());
    }
}
