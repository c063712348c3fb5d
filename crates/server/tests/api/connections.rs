//! The built binary under hostile connections: half-sent requests, bodies that never arrive,
//! more connections than allowed or than file descriptors, and shutdown with clients hanging on.
//! Raw TCP on loopback, short timeouts given as flags; the bounds are generous (slow machines).

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

use crate::support::TestDatabase;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

/// The server process, killed when dropped.
struct Tollgate {
    child: Child,
    addr: String,
    _db: TestDatabase,
}

impl Tollgate {
    async fn start(args: &[&str]) -> Self {
        Self::start_under(&[], args).await
    }

    /// Starts the binary through `wrapper` (e.g. `prlimit --nofile=64:64`) with `args`.
    async fn start_under(wrapper: &[&str], args: &[&str]) -> Self {
        let db = TestDatabase::fresh().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(BIN);
                command
            }
            None => Command::new(BIN),
        };
        let child = command
            .args(["--bind", &addr])
            .args(args)
            .env_clear()
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Self {
            child,
            addr,
            _db: db,
        };
        for _ in 0..200 {
            if server.healthz(Duration::from_secs(2)).await == Some(200) {
                return server;
            }
            assert!(
                server.child.try_wait().unwrap().is_none(),
                "tollgate exited"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("tollgate did not start");
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(&self.addr).await.unwrap()
    }

    /// `GET /healthz` on a new connection; the status, if answered within `wait`.
    async fn healthz(&self, wait: Duration) -> Option<u16> {
        timeout(wait, async {
            let mut stream = TcpStream::connect(&self.addr).await.ok()?;
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .await
                .ok()?;
            let (status, _) = read_response(&mut stream).await?;
            Some(status)
        })
        .await
        .ok()
        .flatten()
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn signal_term(&self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Waits up to `limit` for the process to exit; its success, if it did.
    async fn exited_within(&mut self, limit: Duration) -> Option<bool> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.success());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for Tollgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one response (head and a `Content-Length` body); `None` if the connection ends first.
async fn read_response(stream: &mut TcpStream) -> Option<(u16, Vec<u8>)> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let status = head.split(' ').nth(1)?.parse().ok()?;
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap_or(0));
            if data.len() >= end + 4 + length {
                return Some((status, data[end + 4..end + 4 + length].to_vec()));
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
        }
    }
}

/// How long until the server closes `stream` (reading and discarding), if within `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut chunk = [0u8; 1024];
    timeout(limit, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

fn message(body: &[u8]) -> String {
    let json: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    json["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn half_sent_request_heads_are_cut_off_and_idle_connections_closed() {
    let server = Tollgate::start(&["--header-read-timeout", "1s", "--idle-timeout", "4s"]).await;

    // Half a request head, then nothing: closed after about the header-read timeout.
    let mut half = server.connect().await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow")
        .await
        .unwrap();
    let mut silent = server.connect().await;
    let closed = closed_within(&mut half, Duration::from_secs(8)).await;
    assert!(
        closed.is_some_and(|t| t >= Duration::from_millis(800)),
        "a half-sent head was held: {closed:?}"
    );
    // A connection that never sends a byte is held to the same deadline.
    assert!(
        closed_within(&mut silent, Duration::from_secs(4))
            .await
            .is_some(),
        "a silent connection was held"
    );

    // Between requests a kept-alive connection may idle longer than the header deadline...
    let mut kept = server.connect().await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut kept).await.unwrap().0, 200);
    assert!(
        closed_within(&mut kept, Duration::from_secs(2))
            .await
            .is_none(),
        "an idle kept-alive connection was closed at the header deadline"
    );
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut kept).await.unwrap().0, 200);
    // ...but not past the idle timeout.
    assert!(
        closed_within(&mut kept, Duration::from_secs(10))
            .await
            .is_some(),
        "an idle connection was held past the idle timeout"
    );
}

#[tokio::test]
async fn a_declared_body_that_never_arrives_is_answered_408() {
    let server = Tollgate::start(&["--request-body-timeout", "1s"]).await;
    let mut stream = server.connect().await;
    stream
        .write_all(
            b"POST /api/auth/signin HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
              Content-Length: 10000000\r\n\r\n{",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let (status, body) = timeout(Duration::from_secs(10), read_response(&mut stream))
        .await
        .expect("no answer within the body timeout")
        .expect("closed without an answer");
    assert_eq!(status, 408, "{}", String::from_utf8_lossy(&body));
    assert_eq!(message(&body), "The request body was not received in time.");
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert!(
        closed_within(&mut stream, Duration::from_secs(5))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn at_the_connection_cap_new_clients_wait_for_a_free_slot() {
    let mut server =
        Tollgate::start(&["--max-connections", "5", "--header-read-timeout", "3s"]).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(server.connect().await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A sixth client waits in the listen queue...
    let waiting = {
        let addr = server.addr.clone();
        tokio::spawn(async move {
            let mut stream = TcpStream::connect(&addr).await.unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            (read_response(&mut stream).await, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !waiting.is_finished(),
        "a sixth connection was served beyond --max-connections 5"
    );
    // ...and is served as soon as one of the five goes away.
    let released = Instant::now();
    drop(held.pop());
    let (response, answered) = timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiting client was never served")
        .unwrap();
    assert_eq!(response.unwrap().0, 200);
    assert!(
        answered.duration_since(released) < Duration::from_secs(2),
        "served only after {:?}",
        answered.duration_since(released)
    );
    // The held ones are cut off at the header deadline; the server goes on serving.
    for stream in &mut held {
        assert!(
            closed_within(stream, Duration::from_secs(8))
                .await
                .is_some()
        );
    }
    assert_eq!(server.healthz(Duration::from_secs(5)).await, Some(200));
    assert!(server.is_running());
}

#[tokio::test]
async fn running_out_of_file_descriptors_does_not_stop_the_server() {
    // A cap far above what 64 descriptors allow, so accepting does run out of them.
    let mut server = Tollgate::start_under(
        &["prlimit", "--nofile=64:64"],
        &["--max-connections", "1000", "--header-read-timeout", "2s"],
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(server.connect().await);
    }
    // While they are held, idle, the server frees descriptors by closing them at the header
    // deadline, and keeps accepting: a health check gets through.
    let started = Instant::now();
    let mut status = None;
    while status.is_none() && started.elapsed() < Duration::from_secs(25) {
        status = server.healthz(Duration::from_secs(3)).await;
    }
    assert_eq!(
        status,
        Some(200),
        "no answer with descriptors exhausted after {:?}",
        started.elapsed()
    );
    assert!(server.is_running());
    drop(held);
    assert_eq!(server.healthz(Duration::from_secs(10)).await, Some(200));
    assert!(server.is_running());
}

#[tokio::test]
async fn shutdown_finishes_requests_in_progress_and_drops_stragglers_in_time() {
    let mut server =
        Tollgate::start(&["--shutdown-drain", "4s", "--header-read-timeout", "60s"]).await;
    // A straggler that never finishes its request head.
    let mut straggler = server.connect().await;
    straggler
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        .await
        .unwrap();
    // A sign-in whose body is still on its way when the signal comes.
    let body = br#"{"username": "nobody", "password": "not the password"}"#;
    let mut signin = server.connect().await;
    signin
        .write_all(
            format!(
                "POST /api/auth/signin HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    signin.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    server.signal_term();
    let signalled = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // No new connections once shutting down.
    assert!(
        TcpStream::connect(&server.addr).await.is_err(),
        "still accepting after SIGTERM"
    );
    // The request in progress is answered.
    signin.write_all(&body[10..]).await.unwrap();
    let (status, response) = timeout(Duration::from_secs(10), read_response(&mut signin))
        .await
        .expect("the request in progress was not answered")
        .expect("the request in progress was cut off");
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&response));
    // The straggler does not hold the exit beyond the drain time.
    let exited = server.exited_within(Duration::from_secs(12)).await;
    assert_eq!(exited, Some(true), "tollgate did not exit cleanly in time");
    assert!(
        signalled.elapsed() < Duration::from_secs(4 + 6),
        "exit took {:?}",
        signalled.elapsed()
    );
    assert!(
        closed_within(&mut straggler, Duration::from_secs(2))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn requests_hyper_refuses_get_our_json_error_too() {
    let server = Tollgate::start(&[]).await;
    let many_headers: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let big_header = format!("X-Big: {}\r\n", "a".repeat(20 * 1024));
    for (request, status, expected) in [
        (
            "NOT HTTP AT ALL\r\n\r\n".to_owned(),
            400,
            "The request is not valid HTTP.",
        ),
        (
            "GET /healthz HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n".to_owned(),
            400,
            "The request is not valid HTTP.",
        ),
        (
            format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(70_000)),
            414,
            "The request URI is too long.",
        ),
        // More headers than hyper takes.
        (
            format!("GET /healthz HTTP/1.1\r\nHost: t\r\n{many_headers}\r\n"),
            431,
            "Request headers are too large.",
        ),
        // Larger than our limit: refused by our own middleware.
        (
            format!("GET /healthz HTTP/1.1\r\nHost: t\r\n{big_header}\r\n"),
            431,
            "Request headers are too large.",
        ),
    ] {
        let mut stream = server.connect().await;
        stream.write_all(request.as_bytes()).await.unwrap();
        let (answer_status, body) = timeout(Duration::from_secs(5), read_response(&mut stream))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no answer to {:.40}", request));
        assert_eq!(answer_status, status, "{request:.40}");
        assert_eq!(message(&body), expected, "{request:.40}");
    }
}

#[test]
fn the_connection_options_are_documented_and_checked() {
    let help = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for option in [
        "--header-read-timeout",
        "--request-body-timeout",
        "--idle-timeout",
        "--max-connections",
        "--shutdown-drain",
        "TOLLGATE_MAX_CONNECTIONS",
    ] {
        assert!(help.contains(option), "--help lacks {option}");
    }
    for (args, expected) in [
        (["--max-connections", "0"], "at least 1"),
        (
            ["--header-read-timeout", "0s"],
            "between 100 milliseconds and 1 hour",
        ),
        (["--shutdown-drain", "forever"], "shutdown-drain"),
    ] {
        let output = Command::new(BIN)
            .env_clear()
            .env("DATABASE_URL", "sqlite::memory:")
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?} started");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
