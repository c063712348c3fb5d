//! Password hashing and verification, off the async runtime and bounded.
//!
//! Hashes are argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane). Legacy bcrypt
//! hashes, as the tutorial's database holds, still verify and are flagged for re-hashing.
//! Hashes run on `concurrency` dedicated worker threads (each hash needs 19 MiB), and at most
//! [`QUEUE_PER_WORKER`] per worker wait; beyond that callers get [`Error::Overloaded`] at
//! once, so a sign-in flood can neither starve other requests nor exhaust memory.
//!
//! Each worker owns one argon2 memory block, allocated when it starts and reused by every hash
//! and check it runs: a sign-in allocates no 19 MiB and takes no page faults, and the process
//! holds exactly `concurrency` × 19 MiB for hashing, whatever the allocator would have done
//! with freed blocks. Hashing and checking go through argon2's own functions (the check
//! recomputes the hash with the stored parameters, as `PasswordVerifier` does, and compares
//! with `Output`'s constant-time equality); only the memory is ours.

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
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{self, Output, ParamsString, SaltString},
};
use tokio::sync::{Semaphore, oneshot};

use crate::error::{Error, Result};

/// How many callers may wait for each hashing worker before new ones are refused.
const QUEUE_PER_WORKER: usize = 64;

/// Longest password ever hashed at sign-in; longer input cannot match a stored password
/// (sign-up allows 128 characters, at most 512 bytes).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The stored "hash" of an account that has no password yet (created by an admin, waiting for
/// its owner to choose one) or whose password was voided: nothing matches it.
pub const NO_PASSWORD: &str = "!none";

#[derive(Clone)]
pub struct Passwords {
    inner: Arc<Inner>,
}

type Job = Box<dyn FnOnce(&mut Hasher) + Send + 'static>;

struct Inner {
    /// Jobs for the worker threads; they stop when this is dropped.
    jobs: mpsc::Sender<Job>,
    admitted: Arc<Semaphore>,
    /// Verified against when the user does not exist, so a miss costs the same as a wrong password.
    dummy_hash: String,
    /// Hash computations run so far (hashing and verifying alike).
    runs: AtomicU64,
    /// Time jobs waited for a thread, in all (microseconds).
    waited_micros: AtomicU64,
    /// Jobs admitted at most at once (queued or running).
    capacity: usize,
}

/// The outcome of a password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Mismatch,
    Match,
    /// Matches, but the stored hash is bcrypt or has weaker parameters: store a new one.
    MatchNeedsRehash,
}

/// The parameters of new hashes. OWASP: argon2id, m = 19 MiB, t = 2, p = 1.
fn owasp_params() -> Params {
    // These constants are valid parameters.
    Params::new(19 * 1024, 2, 1, None).unwrap_or_default()
}

impl Passwords {
    pub fn new(concurrency: NonZeroUsize) -> anyhow::Result<Self> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for worker in 0..concurrency.get() {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("tollgate-hash-{worker}"))
                .spawn(move || work(&receiver))
                .context("cannot start a password hashing thread")?;
        }
        // Made by a worker, in its memory, so no hash ever runs outside the workers.
        let (made, dummy) = mpsc::channel();
        sender
            .send(Box::new(move |hasher: &mut Hasher| {
                let _ = made.send(hasher.hash("tollgate dummy password for absent users"));
            }))
            .map_err(|_| anyhow::anyhow!("password hashing threads stopped"))?;
        let dummy_hash = dummy.recv().context("password hashing thread failed")??;
        Ok(Self {
            inner: Arc::new(Inner {
                jobs: sender,
                admitted: Arc::new(Semaphore::new(concurrency.get() * (QUEUE_PER_WORKER + 1))),
                dummy_hash,
                runs: AtomicU64::new(0),
                waited_micros: AtomicU64::new(0),
                capacity: concurrency.get() * (QUEUE_PER_WORKER + 1),
            }),
        })
    }

    /// How many hash computations have run: for metrics, and to prove refused requests cost none.
    pub fn runs(&self) -> u64 {
        self.inner.runs.load(Ordering::Relaxed)
    }

    /// Jobs queued or running now.
    pub fn queue_depth(&self) -> usize {
        self.inner
            .capacity
            .saturating_sub(self.inner.admitted.available_permits())
    }

    /// Time jobs have waited for a hashing thread, in all.
    pub fn waited(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.inner.waited_micros.load(Ordering::Relaxed))
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
        self.run(move |hasher| hasher.hash(&password).map_err(Error::Internal))
            .await
    }

    /// Checks `password` against `stored`, or against a dummy hash when there is no user, so
    /// both cases take the same time. Absent users, and accounts with [`NO_PASSWORD`], never match.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<Verdict> {
        let password = password.to_owned();
        let (stored, present) = match stored {
            Some(hash) if hash != NO_PASSWORD => (hash.to_owned(), true),
            // Costs what a wrong password costs.
            _ => (self.inner.dummy_hash.clone(), false),
        };
        let verdict = self
            .run(move |hasher| Ok(hasher.verify(&password, &stored)))
            .await?;
        Ok(if present { verdict } else { Verdict::Mismatch })
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Hasher) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let admitted = Arc::clone(&self.inner.admitted)
            .try_acquire_owned()
            .map_err(|_| Error::Overloaded)?;
        self.inner.runs.fetch_add(1, Ordering::Relaxed);
        let (done, result) = oneshot::channel();
        // The admission permit moves into the job: if the request is dropped meanwhile, the
        // hash still counts against the limit until it really finishes.
        let queued_at = std::time::Instant::now();
        let inner = Arc::clone(&self.inner);
        let job: Job = Box::new(move |hasher| {
            let _admitted = admitted;
            let waited = u64::try_from(queued_at.elapsed().as_micros()).unwrap_or(u64::MAX);
            inner.waited_micros.fetch_add(waited, Ordering::Relaxed);
            let _ = done.send(job(hasher));
        });
        self.inner
            .jobs
            .send(job)
            .map_err(|_| anyhow::anyhow!("password hashing threads stopped"))?;
        result.await.context("password hashing job failed")?
    }
}

/// A worker thread: runs jobs until the sender is gone, all in the same argon2 memory. A
/// panicking job (there should be none) is contained, so the worker lives on; its caller sees
/// the job fail.
fn work(jobs: &Mutex<mpsc::Receiver<Job>>) {
    let mut hasher = Hasher::new();
    loop {
        let next = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = next else { return };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut hasher)));
    }
}

/// A hashing worker's argon2 memory, sized for [`owasp_params`] and reused by every hash and
/// check on its thread.
struct Hasher {
    memory: Vec<Block>,
}

impl Hasher {
    fn new() -> Self {
        Self {
            memory: vec![Block::default(); owasp_params().block_count()],
        }
    }

    /// Argon2 of `password` and `salt` into `out`, in this worker's memory. A stored hash with
    /// more memory than ours (none today) gets its own, freed afterwards, so the worker never
    /// keeps more than the current parameters need.
    fn compute(
        &mut self,
        argon2: &Argon2<'_>,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> argon2::Result<()> {
        match self.memory.get_mut(..argon2.params().block_count()) {
            Some(memory) => argon2.hash_password_into_with_memory(password, salt, out, memory),
            None => argon2.hash_password_into(password, salt, out),
        }
    }

    /// A new argon2id hash of `password` with a random salt, as a PHC string.
    fn hash(&mut self, password: &str) -> anyhow::Result<String> {
        let params = owasp_params();
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let salt = SaltString::generate(&mut password_hash::rand_core::OsRng);
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt
            .decode_b64(&mut salt_bytes)
            .map_err(|e| anyhow::anyhow!("argon2 salt: {e}"))?;
        let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let output = Output::init_with(output_len, |out| {
            Ok(self.compute(&argon2, password.as_bytes(), salt_bytes, out)?)
        })
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params)
                .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(hash.to_string())
    }

    fn verify(&mut self, password: &str, stored: &str) -> Verdict {
        if password.len() > MAX_PASSWORD_BYTES {
            // Nobody's password: refused, but after the same work as any wrong password, so
            // the answer's timing says nothing about the account.
            let _ = self.verify("", stored);
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
        let Ok(params) = self.check_argon2(password, &parsed) else {
            return Verdict::Mismatch;
        };
        let current = parsed.algorithm == Algorithm::Argon2id.ident()
            && params.m_cost() >= 19 * 1024
            && params.t_cost() >= 2
            && params.p_cost() >= 1;
        if current {
            Verdict::Match
        } else {
            Verdict::MatchNeedsRehash
        }
    }

    /// What argon2's `PasswordVerifier` does, in this worker's memory: recompute the hash with
    /// the stored algorithm, version, parameters and salt, and compare in constant time.
    /// Returns the stored parameters when the password matches.
    fn check_argon2(
        &mut self,
        password: &str,
        stored: &PasswordHash<'_>,
    ) -> password_hash::Result<Params> {
        let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
            return Err(password_hash::Error::Password);
        };
        let algorithm = Algorithm::try_from(stored.algorithm)?;
        let version = stored
            .version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let params = Params::try_from(stored)?;
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
        let computed = Output::init_with(expected.len(), |out| {
            Ok(self.compute(&argon2, password.as_bytes(), salt_bytes, out)?)
        })?;
        // `Output`'s equality is constant-time.
        if computed == *expected {
            Ok(params)
        } else {
            Err(password_hash::Error::Password)
        }
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

    #[test]
    fn hashes_made_in_reused_memory_verify_with_the_plain_argon2_api() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let mut hasher = Hasher::new();
        let first = hasher.hash("correct horse battery").unwrap();
        let second = hasher.hash("another password").unwrap();
        let plain = Argon2::default();
        for (password, hash) in [
            ("correct horse battery", &first),
            ("another password", &second),
        ] {
            let parsed = PasswordHash::new(hash).unwrap();
            assert!(plain.verify_password(password.as_bytes(), &parsed).is_ok());
            assert!(plain.verify_password(b"wrong", &parsed).is_err());
        }
        // And the other way round: the plain API's hash, with today's parameters, as a check.
        let salt = SaltString::generate(&mut password_hash::rand_core::OsRng);
        let made_plainly = Argon2::new(Algorithm::Argon2id, Version::V0x13, owasp_params())
            .hash_password(b"plain", &salt)
            .unwrap()
            .to_string();
        assert_eq!(made_plainly.len(), first.len());
        assert_eq!(hasher.verify("plain", &made_plainly), Verdict::Match);
        assert_eq!(hasher.verify("plane", &made_plainly), Verdict::Mismatch);
    }

    #[test]
    fn hashes_with_other_parameters_verify_in_smaller_or_temporary_memory() {
        use argon2::PasswordHasher;
        let mut hasher = Hasher::new();
        let blocks = hasher.memory.len();
        let cases = [
            // Weaker than today's (a slice of the worker's memory): match, but rehash.
            (
                Algorithm::Argon2id,
                Version::V0x13,
                8 * 1024,
                1,
                Verdict::MatchNeedsRehash,
            ),
            (
                Algorithm::Argon2i,
                Version::V0x13,
                19 * 1024,
                2,
                Verdict::MatchNeedsRehash,
            ),
            (
                Algorithm::Argon2id,
                Version::V0x10,
                19 * 1024,
                2,
                Verdict::Match,
            ),
            // Stronger than today's (memory of its own, freed after): a current hash.
            (
                Algorithm::Argon2id,
                Version::V0x13,
                24 * 1024,
                2,
                Verdict::Match,
            ),
        ];
        for (algorithm, version, m_cost, t_cost, verdict) in cases {
            let params = Params::new(m_cost, t_cost, 1, None).unwrap();
            let salt = SaltString::generate(&mut password_hash::rand_core::OsRng);
            let stored = Argon2::new(algorithm, version, params)
                .hash_password(b"legacy", &salt)
                .unwrap()
                .to_string();
            assert_eq!(hasher.verify("legacy", &stored), verdict, "{stored}");
            assert_eq!(
                hasher.verify("legacx", &stored),
                Verdict::Mismatch,
                "{stored}"
            );
        }
        assert_eq!(
            hasher.memory.len(),
            blocks,
            "the worker's memory never grows"
        );
    }

    #[test]
    fn a_tampered_hash_does_not_match() {
        let mut hasher = Hasher::new();
        let hash = hasher.hash("pw").unwrap();
        // One character of the output, well inside it, changed.
        let (head, tail) = hash.split_at(hash.len() - 5);
        let flipped = if tail.starts_with('A') { "B" } else { "A" };
        let tampered = format!("{head}{flipped}{}", &tail[1..]);
        assert_ne!(tampered, hash);
        assert_eq!(hasher.verify("pw", &tampered), Verdict::Mismatch);
        assert_eq!(
            hasher.verify("pw", &hash.replace("m=19456", "m=19457")),
            Verdict::Mismatch
        );
    }
}
