//! PostgreSQL going away and coming back, through a TCP proxy the test controls: requests that
//! need the database answer 503 with `Retry-After` within about a second, token checks go on,
//! and the server recovers by itself. (SQLite has no such outage; the test is skipped there.)

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use api::Role;
use axum::http::StatusCode;
use tokio::{
    io::copy_bidirectional,
    net::{TcpListener, TcpStream},
    sync::watch,
};

use crate::support::{PASSWORD, TestApp, TestDatabase};

/// Forwards loopback connections to the database while up; while down, drops every open
/// connection and closes new ones at once.
struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let proxy = Self {
            port,
            down: down.clone(),
            generation: generation.clone(),
        };
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if down.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let mut cut = generation.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        proxy
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            self.generation.send_modify(|g| *g += 1);
        }
    }
}

#[tokio::test]
async fn postgres_down_answers_503_quickly_and_recovers_by_itself() {
    let db = TestDatabase::fresh().await;
    let Some(rest) = db.url.strip_prefix("postgres://") else {
        eprintln!("skipped: PostgreSQL only (set TOLLGATE_TEST_DATABASE_URL)");
        return;
    };
    // postgres://user:pass@host:port/db → forward host:port through the proxy.
    let (credentials, location) = rest.split_once('@').unwrap();
    let (address, database) = location.split_once('/').unwrap();
    let proxy = Proxy::start(address.to_owned()).await;
    let proxied = format!(
        "postgres://{credentials}@127.0.0.1:{}/{database}",
        proxy.port
    );
    db.storage().await.close().await; // migrate directly
    let app = TestApp::on(TestDatabase::existing(&proxied), |_| {}).await;
    let token = app.user_with_roles("alice", &[Role::User]).await;

    proxy.set_down(true);
    let started = Instant::now();
    let refused = app.signin("alice", PASSWORD).await;
    let waited = started.elapsed();
    refused.assert(StatusCode::SERVICE_UNAVAILABLE);
    assert!(waited < Duration::from_millis(2500), "took {waited:?}");
    assert!(refused.header("retry-after").is_some());
    assert!(refused.message().contains("database"), "{}", refused.text());
    assert!(app.state.storage.is_unavailable());
    // Token checks need no database.
    app.get("/api/test/user", Some(&token))
        .await
        .assert(StatusCode::OK);
    // Every route that needs it answers the same way, never 500.
    let me = app.get("/api/user/me", Some(&token)).await;
    me.assert(StatusCode::SERVICE_UNAVAILABLE);

    proxy.set_down(false);
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..40 {
        status = app.signin("alice", PASSWORD).await.status;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, StatusCode::OK, "no recovery");
    for _ in 0..40 {
        if !app.state.storage.is_unavailable() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        !app.state.storage.is_unavailable(),
        "the outage never ended"
    );
}
