//! A full disk under a SQLite database: nothing acknowledged is lost, nothing answers 500, and
//! writes work again once space is back, without a restart. Needs root (it mounts a small tmpfs);
//! CI runs as root, so it runs there.

use std::{
    collections::BTreeSet,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::json;

use crate::{
    binary::{Server, get, post},
    support::{PASSWORD, TestDatabase},
};

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A small tmpfs, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs failed (root is needed)");
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk until a write fails, leaving `keep` bytes free by freeing them again.
    fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).and_then(|()| file.flush()).is_ok() {}
        drop(file);
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Every user in `acknowledged` is in the database.
async fn assert_all_stored(storage: &tollgate::storage::Storage, acknowledged: &BTreeSet<String>) {
    let stored: BTreeSet<String> = storage
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    let missing: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
}

async fn signup(base: &str, name: &str) -> u16 {
    let (status, body) = post(
        base,
        "/api/auth/signup",
        json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}),
    )
    .await;
    if status == 503 {
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "503 without a message: {body}"
        );
    }
    status
}

#[tokio::test]
async fn a_full_disk_loses_no_acknowledged_write_and_recovers_without_restart() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let disk = SmallDisk::mount("6m");
    let db = TestDatabase::existing(&format!(
        "sqlite://{}",
        disk.path().join("tollgate.db").display()
    ));
    let server = Server::start_with(
        &db,
        &["--rate-limit-signup", "0", "--rate-limit-signin", "0"],
    )
    .await;
    let base = server.base.clone();

    assert_eq!(signup(&base, "owner").await, 200);
    let (status, body) = post(
        &base,
        "/api/auth/signin",
        json!({"username": "owner", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["accessToken"].as_str().unwrap().to_owned();

    let filler = disk.fill();
    let mut acknowledged = BTreeSet::new();
    let mut refused = 0;
    for i in 0..200 {
        let name = format!("user{i:04}");
        match signup(&base, &name).await {
            200 => {
                acknowledged.insert(name);
            }
            503 => refused += 1,
            other => panic!("sign-up {i} on a full disk answered {other}"),
        }
        if refused >= 12 {
            break;
        }
    }
    assert!(refused >= 12, "the disk never filled up");

    // Reads and token checks keep working; sign-in is refused cleanly (503) or works.
    assert_eq!(
        get(&base, "/api/test/user", &token).await,
        (200, "User Content.".to_owned())
    );
    let (status, body) = post(
        &base,
        "/api/auth/signin",
        json!({"username": "owner", "password": PASSWORD}),
    )
    .await;
    assert!(
        status == 200 || status == 503,
        "sign-in on a full disk: {status} {body}"
    );

    // Space comes back: writes work again, on every pooled connection, without a restart.
    std::fs::remove_file(&filler).unwrap();
    for i in 0..20 {
        let name = format!("after{i:02}");
        assert_eq!(
            signup(&base, &name).await,
            200,
            "sign-up {name} after space came back"
        );
        acknowledged.insert(name);
    }
    let (status, _) = post(
        &base,
        "/api/auth/signin",
        json!({"username": "owner", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200);
    server.stop();

    // Everything acknowledged is there, and the file is sound.
    let storage = db.storage().await;
    assert_all_stored(&storage, &acknowledged).await;
    let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
    let (check,): (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    pool.close().await;
    storage.close().await;
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let db = TestDatabase::fresh().await;
    let mut server = Server::start_with(&db, &["--rate-limit-signup", "0"]).await;
    let base = server.base.clone();
    // Sign-ups in flight when the process dies: whatever was answered 200 must be there.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let base = base.clone();
        tasks.spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(i * 15)).await;
            let name = format!("crash{i:02}");
            let response = reqwest::Client::new()
                .post(format!("{base}/api/auth/signup"))
                .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}))
                .send()
                .await;
            matches!(response, Ok(r) if r.status() == 200).then_some(name)
        });
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    let acknowledged: BTreeSet<String> = tasks.join_all().await.into_iter().flatten().collect();
    assert!(
        !acknowledged.is_empty(),
        "nothing was acknowledged before the kill"
    );

    let restarted = Server::start(&db).await;
    let storage = db.storage().await;
    assert_all_stored(&storage, &acknowledged).await;
    storage.close().await;
    restarted.stop();
}
