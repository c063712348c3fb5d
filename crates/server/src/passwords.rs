//! Password hashing and verification, off the async runtime and bounded.
//!
//! Hashes are argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane). Legacy bcrypt
//! hashes, as the tutorial's database holds, still verify and are flagged for re-hashing.
//! Hashes run on `concurrency` dedicated worker threads (each hash needs 19 MiB), and at most
//! [`QUEUE_PER_WORKER`] per worker wait; beyond that callers get [`Error::Overloaded`] at
//! once, so a sign-in flood can neither starve other requests nor exhaust memory. Dedicated
//! threads (rather than tokio's blocking pool, which may use a different thread, and so a
//! different allocator arena, each time) also keep the memory the allocator holds on to
//! bounded by the number of workers.

use std::{
    num::NonZeroUsize,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
};

use anyhow::Context;
use api::Password;
use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    password_hash::SaltString,
};
use tokio::sync::{Semaphore, oneshot};

use crate::error::{Error, Result};

/// How many callers may wait for each hashing worker before new ones are refused.
const QUEUE_PER_WORKER: usize = 64;

/// Longest password ever hashed at sign-in; longer input cannot match a stored password
/// (sign-up allows 128 characters, at most 512 bytes).
pub const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Clone)]
pub struct Passwords {
    inner: Arc<Inner>,
}

type Job = Box<dyn FnOnce() + Send + 'static>;

struct Inner {
    /// Jobs for the worker threads; they stop when this is dropped.
    jobs: mpsc::Sender<Job>,
    admitted: Arc<Semaphore>,
    /// Verified against when the user does not exist, so a miss costs the same as a wrong password.
    dummy_hash: String,
    /// Hash computations run so far (hashing and verifying alike).
    runs: AtomicU64,
}

/// The outcome of a password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Mismatch,
    Match,
    /// Matches, but the stored hash is bcrypt or has weaker parameters: store a new one.
    MatchNeedsRehash,
}

fn argon2() -> Argon2<'static> {
    // OWASP: argon2id, m = 19 MiB, t = 2, p = 1. These constants are valid parameters.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl Passwords {
    pub fn new(concurrency: NonZeroUsize) -> anyhow::Result<Self> {
        let dummy_hash = hash_now("tollgate dummy password for absent users")?;
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for worker in 0..concurrency.get() {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("tollgate-hash-{worker}"))
                .spawn(move || work(&receiver))
                .context("cannot start a password hashing thread")?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                jobs: sender,
                admitted: Arc::new(Semaphore::new(concurrency.get() * (QUEUE_PER_WORKER + 1))),
                dummy_hash,
                runs: AtomicU64::new(0),
            }),
        })
    }

    /// How many hash computations have run: for metrics, and to prove refused requests cost none.
    pub fn runs(&self) -> u64 {
        self.inner.runs.load(Ordering::Relaxed)
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: &Password) -> Result<String> {
        self.hash_str(password.expose()).await
    }

    /// Hashes a password that predates today's length rules (a legacy bcrypt user's), when
    /// upgrading its stored hash after a successful sign-in.
    pub async fn hash_legacy(&self, password: &str) -> Result<String> {
        self.hash_str(password).await
    }

    async fn hash_str(&self, password: &str) -> Result<String> {
        let password = password.to_owned();
        self.run(move || hash_now(&password).map_err(Error::Internal))
            .await
    }

    /// Checks `password` against `stored`, or against a dummy hash when there is no user, so
    /// both cases take the same time. Absent users never match.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<Verdict> {
        let password = password.to_owned();
        let (stored, present) = match stored {
            Some(hash) => (hash.to_owned(), true),
            None => (self.inner.dummy_hash.clone(), false),
        };
        let verdict = self.run(move || Ok(verify_now(&password, &stored))).await?;
        Ok(if present { verdict } else { Verdict::Mismatch })
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let admitted = Arc::clone(&self.inner.admitted)
            .try_acquire_owned()
            .map_err(|_| Error::Overloaded)?;
        self.inner.runs.fetch_add(1, Ordering::Relaxed);
        let (done, result) = oneshot::channel();
        // The admission permit moves into the job: if the request is dropped meanwhile, the
        // hash still counts against the limit until it really finishes.
        let job: Job = Box::new(move || {
            let _admitted = admitted;
            let _ = done.send(job());
        });
        self.inner
            .jobs
            .send(job)
            .map_err(|_| anyhow::anyhow!("password hashing threads stopped"))?;
        result.await.context("password hashing job failed")?
    }
}

/// A worker thread: runs jobs until the sender is gone. A panicking job (there should be none)
/// is contained, so the worker lives on; its caller sees the job fail.
fn work(jobs: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let next = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = next else { return };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

fn hash_now(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let hash = argon2()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
    Ok(hash.to_string())
}

fn verify_now(password: &str, stored: &str) -> Verdict {
    if password.len() > MAX_PASSWORD_BYTES {
        return Verdict::Mismatch;
    }
    if stored.starts_with("$2a$") || stored.starts_with("$2b$") || stored.starts_with("$2y$") {
        return match bcrypt::verify(password, stored) {
            Ok(true) => Verdict::MatchNeedsRehash,
            _ => Verdict::Mismatch,
        };
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        tracing::warn!("stored password hash is in an unknown format");
        return Verdict::Mismatch;
    };
    if argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_err()
    {
        return Verdict::Mismatch;
    }
    let current = parsed.algorithm.as_str() == "argon2id"
        && Params::try_from(&parsed)
            .is_ok_and(|p| p.m_cost() >= 19 * 1024 && p.t_cost() >= 2 && p.p_cost() >= 1);
    if current {
        Verdict::Match
    } else {
        Verdict::MatchNeedsRehash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passwords() -> Passwords {
        Passwords::new(NonZeroUsize::new(2).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn argon2id_round_trip_with_owasp_parameters() {
        let pw = Password::parse("correct horse battery").unwrap();
        let p = passwords();
        let hash = p.hash(&pw).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_eq!(
            p.verify(pw.expose(), Some(&hash)).await.unwrap(),
            Verdict::Match
        );
        assert_eq!(
            p.verify("wrong password", Some(&hash)).await.unwrap(),
            Verdict::Mismatch
        );
    }

    #[tokio::test]
    async fn bcrypt_from_the_tutorial_verifies_and_asks_for_rehash() {
        let legacy = bcrypt::hash("tutorial-pass", 8).unwrap();
        let p = passwords();
        assert_eq!(
            p.verify("tutorial-pass", Some(&legacy)).await.unwrap(),
            Verdict::MatchNeedsRehash
        );
        assert_eq!(
            p.verify("nope", Some(&legacy)).await.unwrap(),
            Verdict::Mismatch
        );
        for prefix in ["$2a$", "$2y$"] {
            let variant = legacy.replacen("$2b$", prefix, 1);
            assert_eq!(
                p.verify("tutorial-pass", Some(&variant)).await.unwrap(),
                Verdict::MatchNeedsRehash
            );
        }
    }

    #[tokio::test]
    async fn absent_users_never_match_and_garbage_hashes_do_not_panic() {
        let p = passwords();
        assert_eq!(p.verify("anything", None).await.unwrap(), Verdict::Mismatch);
        assert_eq!(
            p.verify("x", Some("not a hash")).await.unwrap(),
            Verdict::Mismatch
        );
        let huge = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert_eq!(p.verify(&huge, None).await.unwrap(), Verdict::Mismatch);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let p = Passwords::new(NonZeroUsize::MIN).unwrap();
        // Hold every admission slot, then ask once more.
        let held = p
            .inner
            .admitted
            .try_acquire_many(p.inner.admitted.available_permits() as u32)
            .unwrap();
        assert!(matches!(p.verify("x", None).await, Err(Error::Overloaded)));
        drop(held);
        assert!(p.verify("x", None).await.is_ok());
    }
}
