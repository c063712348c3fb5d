//! What one hop of HTTP keeps to itself (RFC 9110 §7.6), as the gate forwards a message: the
//! connection's own headers, which it drops both ways; `Via`, to which it adds itself after the
//! hops before it; and `Max-Forwards`, which it counts down on TRACE and OPTIONS.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Version, header};

/// The gate's name in `Via`, by which a request that comes back through it is known.
pub const VIA_NAME: &str = "tollgate";

/// The headers no hop passes on (RFC 9110 §7.6.1), besides those its `Connection` names.
/// `Trailer` too: each hop frames the body anew.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes the hop-by-hop headers and those `Connection` names. An upgrade (a WebSocket
/// handshake and its 101) keeps `Connection` and `Upgrade`, which carry it to the next hop.
pub fn strip(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named) {
        if upgrade && (name == header::CONNECTION || name == header::UPGRADE) {
            continue;
        }
        headers.remove(name);
    }
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
    let Some(left) = headers
        .get(header::MAX_FORWARDS)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u32>().ok())
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
        ]);
        strip(&mut map, false);
        let left: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-kept"]);
    }

    #[test]
    fn an_upgrade_keeps_what_carries_it() {
        let mut map = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("keep-alive", "timeout=5"),
        ]);
        strip(&mut map, true);
        assert_eq!(map["connection"], "Upgrade");
        assert_eq!(map["upgrade"], "websocket");
        assert!(map.get("keep-alive").is_none());
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
        let mut odd = headers(&[("max-forwards", "lots")]);
        assert!(!is_last_hop(&Method::OPTIONS, &mut odd));
        assert_eq!(odd["max-forwards"], "lots");
    }
}
