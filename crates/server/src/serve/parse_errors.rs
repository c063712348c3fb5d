//! Our JSON error body for the requests hyper refuses itself.
//!
//! hyper answers a request it cannot parse — 400 for a malformed request line or header, 414 for
//! a URI over 64 KiB, 431 for a head over its buffer or with more than 100 headers — before any
//! service of ours runs, with a bare head and an empty body, and hyper 1.x offers no hook to
//! supply one (`Server::on_error` in its `proto/h1/role.rs` builds the head, and the connection
//! closes after it). So the answer is recognised on its way to the socket instead: a lone head
//! with `content-length: 0`, no header beyond `date` and `connection`, written while no request
//! of ours is in flight — none of our own answers looks like that, every 400, 414 or 431 of ours
//! carries our headers — and replaced with the same status and our `{"message"}` body.

use axum::http::StatusCode;

use crate::error::Error;

/// Our answer in place of `written`, when `written` is hyper's own answer to a parse error.
pub(super) fn json_answer(written: &[u8]) -> Option<Vec<u8>> {
    // Whatever is written while no request is in flight passes here (forward-auth's empty 200s
    // among it): the status decides first, on the bytes.
    let error = match written.strip_prefix(b"HTTP/1.1 ")?.get(..4)? {
        b"400 " => Error::MalformedRequest,
        b"414 " => Error::UriTooLong,
        b"431 " => Error::HeadersTooLarge,
        _ => return None,
    };
    let head = std::str::from_utf8(written.strip_suffix(b"\r\n\r\n")?).ok()?;
    let lines = head.split("\r\n").skip(1);
    let mut date = None;
    let mut empty = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" if value == "0" => empty = true,
            "date" => date = Some(value),
            "connection" => {}
            _ => return None,
        }
    }
    if !empty {
        return None;
    }
    let body = serde_json::to_vec(&api::wire::MessageBody {
        message: error.client_message(),
    })
    .ok()?;
    let status: StatusCode = error.status();
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\nx-content-type-options: nosniff\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or_default(),
        body.len()
    );
    if let Some(date) = date {
        answer.push_str("date: ");
        answer.push_str(date);
        answer.push_str("\r\n");
    }
    answer.push_str("\r\n");
    let mut answer = answer.into_bytes();
    answer.extend_from_slice(&body);
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "date: Mon, 30 Nov 2026 18:00:00 GMT";

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn hypers_bare_refusals_get_our_json_body() {
        for (status, message) in [
            ("400 Bad Request", "The request is not valid HTTP."),
            ("414 URI Too Long", "The request URI is too long."),
            (
                "431 Request Header Fields Too Large",
                "Request headers are too large.",
            ),
        ] {
            let bare = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n{DATE}\r\n\r\n");
            let answer = text(&json_answer(bare.as_bytes()).unwrap());
            let (head, body) = answer.split_once("\r\n\r\n").unwrap();
            assert!(
                head.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{head}"
            );
            assert!(head.contains("content-type: application/json"));
            assert!(head.contains(&format!("content-length: {}", body.len())));
            assert!(head.contains(DATE));
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(json["message"], message);
        }
    }

    #[test]
    fn anything_else_is_left_alone() {
        for written in [
            // Our own answers carry a body or our headers.
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n{\"message\"}",
            "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n\
             content-length: 0\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
            // Other statuses, or a head not yet complete.
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            "{\"message\":\"x\"}",
        ] {
            assert!(json_answer(written.as_bytes()).is_none(), "{written}");
        }
    }
}
