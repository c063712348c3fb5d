//! What the admin search needs besides its indexes: how common each trigram is.
//!
//! A trigram index (`pg_trgm` GIN on PostgreSQL, FTS5's trigram tokenizer on SQLite) answers a
//! search for any part of a name by reading the entries of the query's trigrams, and a trigram
//! that most users share (`use` and `ser` when every name starts with `user`, `com` in
//! addresses) has an entry as long as the table: at a million users, reading two of them costs
//! more than everything else a search does. So the index is asked about the uncommon part of the
//! query only, and the query itself is checked on the rows it finds:
//!
//! - PostgreSQL probes its indexes with the longest stretch of the query whose trigrams are all
//!   uncommon ([`SearchHints::probe`]);
//! - SQLite's index keeps which rows hold a gram, not where (`detail = none`, a fifth of the
//!   size), and is asked for the rows holding one to three of the query's rarest grams, or its
//!   longest grams when there is no sample ([`SearchHints::lookups`]). It holds the trigrams
//!   of each name and address and their 4-grams too: a 4-gram is in about a tenth as many
//!   users as a trigram of the same text (`3334` against `333`), so a fragment of digits reads
//!   a tenth of the entries. FTS5 only makes trigrams, so the 4-grams are indexed as the
//!   trigrams of a copy in which each pair of neighbouring characters is one symbol
//!   ([`pairs`]).
//!
//! How common each gram is, is learnt from a sample of the users, taken at start-up and every
//! half hour (and only past 50 000 users: below, every entry is short).

use std::{
    collections::{HashMap, HashSet},
    sync::{
        RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use super::{Pool, Storage};
use crate::error::Result;

/// A gram in more than this share of the sampled users is common.
const COMMON_SHARE: f64 = 0.05;
/// About how many users a sample reads.
const SAMPLE_ROWS: f64 = 10_000.0;
/// Below this many users, every trigram is cheap to look up: no sample is taken.
const SAMPLE_FROM: f64 = 50_000.0;
/// Grams in fewer sampled users than this are not counted (they are all rare, and a sample of
/// random text would otherwise keep every gram it read).
const COUNTED_FROM: usize = 5;
/// The most grams a lookup reads (with a sample).
const MOST_LOOKUPS: usize = 3;
/// How many of the query's rarest grams the lookup is chosen among (2^8 subsets at most).
const RAREST_CONSIDERED: usize = 8;
/// Checking a row the index found costs about this many times as much as reading one index
/// entry (measured at a million users: ~1 µs against ~25 ns).
const ROW_VERSUS_ENTRY: f64 = 40.0;

/// How many users SQLite's index takes in at once: it holds the write lock for about 10 ms.
const INDEX_BATCH: i64 = 500;
/// How long the index's keeper leaves the write lock free between two batches, so that sign-ins
/// waiting for it get it.
const BETWEEN_BATCHES: Duration = Duration::from_millis(10);
/// How often the keeper looks for users to take in.
const KEEP_EVERY: Duration = Duration::from_secs(2);
/// After taking in this many users at once, the index is merged into one segment (else a
/// lookup reads one entry per segment, and takes three times as long): once after an upgrade
/// or a bulk import, some 1.5 s of work at a million users...
const MERGE_AFTER: usize = 10_000;
/// ... done this many pages at a time (about 20 ms of holding the write lock).
const MERGE_PAGES: i64 = 100;

/// What the last sample of users found, and how many users SQLite's index has yet to take in.
#[derive(Debug, Default)]
pub struct SearchHints {
    learnt: RwLock<Learnt>,
    waiting: AtomicU64,
    merging: AtomicBool,
    merge_owed: AtomicBool,
}

#[derive(Debug, Default)]
struct Learnt {
    /// Users sampled; none when the table was too small to need it.
    rows: usize,
    /// How many sampled users have each trigram and 4-gram, for those counted at least
    /// [`COUNTED_FROM`] times.
    counts: HashMap<String, usize>,
    /// The trigrams in more than [`COMMON_SHARE`] of the sampled users.
    common: HashSet<String>,
}

impl Learnt {
    /// The share of users estimated to have `gram`.
    #[expect(
        clippy::cast_precision_loss,
        reason = "counts of a sample; exact to 2^52 rows"
    )]
    fn share(&self, gram: &str) -> f64 {
        // An uncounted gram is somewhere below COUNTED_FROM: take half of it.
        let count = self
            .counts
            .get(gram)
            .map_or(COUNTED_FROM as f64 / 2.0, |count| *count as f64);
        count / self.rows.max(1) as f64
    }
}

/// What looking up `choice` costs, in index entries per user: its entries, and the rows they
/// leave to check. `choice` comes with each gram's share of users, in the order the grams
/// stand in the query. Grams are taken as independent where they do not overlap; a gram
/// sharing characters with another narrows by its new characters only.
fn cost<'q>(choice: impl Iterator<Item = (Gram<'q>, f64)>) -> f64 {
    let (mut entries, mut left, mut covered) = (0.0, 1.0, 0);
    for (gram, share) in choice {
        let end = gram.at + gram.len;
        let new = end.saturating_sub(gram.at.max(covered));
        entries += share;
        #[expect(clippy::cast_precision_loss, reason = "0 to 4")]
        let narrowing = share.powf(new as f64 / gram.len as f64);
        left *= narrowing;
        covered = covered.max(end);
    }
    entries + left * ROW_VERSUS_ENTRY
}

/// A gram of a query (`len` characters, 3 or 4): where it starts (in characters and in bytes)
/// and its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gram<'q> {
    at: usize,
    start: usize,
    len: usize,
    text: &'q str,
}

impl<'q> Gram<'q> {
    /// Its text, as it stands in the query.
    pub fn text(&self) -> &'q str {
        self.text
    }

    /// Whether it is a trigram: the index holds its text as it is. (A 4-gram it holds as
    /// [`pairs`] of its text.)
    pub fn is_trigram(&self) -> bool {
        self.len == 3
    }

    /// What the index is asked for: the trigram itself, or a 4-gram as the trigram of its
    /// [`pairs`].
    pub fn token(&self) -> String {
        if self.is_trigram() {
            self.text.to_owned()
        } else {
            pairs(self.text)
        }
    }
}

/// The grams of `len` characters of `query`, in order.
fn grams(query: &str, len: usize) -> Vec<Gram<'_>> {
    // Byte offsets of every character, and of the end.
    let bounds: Vec<usize> = query
        .char_indices()
        .map(|(at, _)| at)
        .chain([query.len()])
        .collect();
    (0..bounds.len().saturating_sub(len))
        .map(|at| Gram {
            at,
            start: bounds[at],
            len,
            text: &query[bounds[at]..bounds[at + len]],
        })
        .collect()
}

/// The trigrams of `query`, in order.
fn trigrams(query: &str) -> Vec<Gram<'_>> {
    grams(query, 3)
}

/// `text` with each pair of neighbouring characters made one symbol, so that its trigrams
/// stand for the 4-grams of `text`: `abcde` becomes the symbols of `ab bc cd de`, whose
/// trigrams are `abcd` and `bcde`. The symbols are private-use characters (plane 15), which
/// no name or address holds and case folding leaves alone: one for each pair of ASCII
/// characters, and pairs with any other character hashed over the rest of the plane (two
/// pairs sharing a symbol only make the index return a row that the search's check then
/// drops). Stored in the index: never change it without rebuilding the index.
pub fn pairs(text: &str) -> String {
    const ASCII_FIRST: u32 = 0xF_0000;
    const OTHER_FIRST: u32 = ASCII_FIRST + 128 * 128;
    const OTHER_COUNT: u32 = 0xF_FFFE - OTHER_FIRST;
    let symbol = |a: char, b: char| {
        let (a, b) = (u32::from(a), u32::from(b));
        let code = if a < 128 && b < 128 {
            ASCII_FIRST + a * 128 + b
        } else {
            // FNV-1a over the two code points: fixed, unlike the standard library's hasher.
            let hash = [a, b]
                .iter()
                .flat_map(|c| c.to_le_bytes())
                .fold(0x811c_9dc5_u32, |hash, byte| {
                    (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
                });
            OTHER_FIRST + hash % OTHER_COUNT
        };
        char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER)
    };
    text.chars()
        .zip(text.chars().skip(1))
        .map(|(a, b)| symbol(a, b))
        .collect()
}

impl SearchHints {
    /// Learns how common trigrams and 4-grams are from a sample of (lower-cased username,
    /// address) pairs.
    fn learn<'a>(&self, sample: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let mut rows = 0usize;
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (username, email) in sample {
            rows += 1;
            let mut seen = HashSet::new();
            for text in [username, email] {
                for len in [3, 4] {
                    seen.extend(grams(text, len).into_iter().map(|gram| gram.text));
                }
            }
            for gram in seen {
                *counts.entry(gram.to_owned()).or_default() += 1;
            }
        }
        #[expect(
            clippy::cast_precision_loss,
            reason = "a share of a sample; exact to 2^52 rows"
        )]
        let threshold = rows as f64 * COMMON_SHARE;
        // Common trigrams before the rare ones are dropped: in a small sample, a count under
        // COUNTED_FROM can still be a common share.
        #[expect(clippy::cast_precision_loss, reason = "as above")]
        let common = counts
            .iter()
            .filter(|(gram, count)| **count as f64 > threshold && gram.chars().count() == 3)
            .map(|(trigram, _)| trigram.clone())
            .collect();
        counts.retain(|_, count| *count >= COUNTED_FROM);
        if let Ok(mut guard) = self.learnt.write() {
            *guard = Learnt {
                rows,
                counts,
                common,
            };
        }
    }

    /// The part of `query` (lower-cased) for the index to look up: its longest stretch whose
    /// trigrams are all uncommon. The whole query when none of its trigrams is common, when
    /// all are, or when it is shorter than a trigram. With `words_only` (pg_trgm, which makes
    /// trigrams of letters and digits only), a trigram with any other character is left out
    /// of the stretch too.
    pub fn probe<'q>(&self, query: &'q str, words_only: bool) -> &'q str {
        let Ok(learnt) = self.learnt.read() else {
            return query;
        };
        if learnt.common.is_empty() {
            return query;
        }
        let windows = trigrams(query);
        // The longest run of uncommon windows: (first window, how many).
        let (mut best, mut run_start, mut run) = ((0, 0), 0, 0);
        for (i, window) in windows.iter().enumerate() {
            let uncommon = !learnt.common.contains(window.text)
                && (!words_only || window.text.chars().all(char::is_alphanumeric));
            if uncommon {
                if run == 0 {
                    run_start = i;
                }
                run += 1;
                if run > best.1 {
                    best = (run_start, run);
                }
            } else {
                run = 0;
            }
        }
        let (first, count) = best;
        if count == 0 || count == windows.len() {
            return query;
        }
        let last = windows[first + count - 1];
        &query[windows[first].start..last.start + last.text.len()]
    }

    /// The grams of `query` (lower-cased) for an index of which rows hold each trigram and
    /// 4-gram to look up: every row holding the query holds all of them. Without a sample, all
    /// of the query's longest grams (4-grams, or its trigram; each entry is short). With one,
    /// the few that cost least to read and then check the rows they leave (see [`cost`]).
    /// Empty for a query shorter than a trigram.
    pub fn lookups<'q>(&self, query: &'q str) -> Vec<Gram<'q>> {
        let mut seen = HashSet::new();
        let learnt = match self.learnt.read() {
            Ok(learnt) if learnt.rows > 0 => learnt,
            _ => {
                let mut longest = grams(query, 4);
                if longest.is_empty() {
                    longest = trigrams(query);
                }
                longest.retain(|gram| seen.insert(gram.text));
                return longest;
            }
        };
        let mut windows = trigrams(query);
        windows.extend(grams(query, 4));
        windows.retain(|gram| seen.insert(gram.text));
        // Each share looked up once, the rarest first.
        let mut windows: Vec<(Gram<'q>, f64)> = windows
            .into_iter()
            .map(|gram| (gram, learnt.share(gram.text)))
            .collect();
        windows.sort_by(|a, b| a.1.total_cmp(&b.1).then(b.0.len.cmp(&a.0.len)));
        windows.truncate(RAREST_CONSIDERED);
        // Their indices in the order they stand in the query, for `cost` (the longer of two
        // grams at one place first, whatever the shares).
        let mut in_query: Vec<usize> = (0..windows.len()).collect();
        in_query.sort_by_key(|&i| (windows[i].0.at, std::cmp::Reverse(windows[i].0.len)));
        // Every choice of one to MOST_LOOKUPS of them (at most 2^8 subsets), as a bit set.
        let mut best: Option<(f64, u32)> = None;
        for subset in 1u32..1 << windows.len() {
            if subset.count_ones() as usize > MOST_LOOKUPS {
                continue;
            }
            let choice = in_query
                .iter()
                .filter(|&&i| subset & (1 << i) != 0)
                .map(|&i| windows[i]);
            let cost = cost(choice);
            if best.is_none_or(|(least, _)| cost < least) {
                best = Some((cost, subset));
            }
        }
        let Some((_, subset)) = best else {
            return Vec::new();
        };
        in_query
            .into_iter()
            .filter(|i| subset & (1 << i) != 0)
            .map(|i| windows[i].0)
            .collect()
    }
}

impl Storage {
    /// Takes into SQLite's search index up to [`INDEX_BATCH`] of the users queued for it
    /// (added, renamed, readdressed or deleted since), in one transaction: their old entries
    /// out, their trigrams and [`pairs`] in. How many it took; 0 when none was waiting, and
    /// always on PostgreSQL, whose indexes the database keeps.
    pub async fn index_users_for_search(&self) -> Result<usize> {
        let Pool::Sqlite(pool) = &self.pool else {
            return Ok(0);
        };
        let mut tx = pool.begin().await?;
        // Taking the batch off the queue first takes the write lock: nothing changes under it.
        let ids: Vec<(i64,)> = sqlx::query_as(
            "DELETE FROM users_search_pending WHERE id IN \
             (SELECT id FROM users_search_pending ORDER BY id LIMIT $1) RETURNING id",
        )
        .bind(INDEX_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = ids.into_iter().map(|(id,)| id).collect();
        let ids_json = serde_json::Value::from(ids.as_slice()).to_string();
        sqlx::query("DELETE FROM users_search WHERE rowid IN (SELECT value FROM json_each($1))")
            .bind(&ids_json)
            .execute(&mut *tx)
            .await?;
        // As bytes: a row a tool wrote with a blob or invalid UTF-8 must not stop the queue.
        let users: Vec<(i64, Vec<u8>, Vec<u8>)> = sqlx::query_as(
            "SELECT id, CAST(username AS BLOB), CAST(email AS BLOB) FROM users \
             WHERE id IN (SELECT value FROM json_each($1))",
        )
        .bind(&ids_json)
        .fetch_all(&mut *tx)
        .await?;
        let rows: Vec<serde_json::Value> = users
            .iter()
            .map(|(id, username, email)| {
                let (username, email) = (
                    String::from_utf8_lossy(username),
                    String::from_utf8_lossy(email),
                );
                serde_json::json!([
                    id,
                    username,
                    email,
                    pairs(&username.to_lowercase()),
                    pairs(&email.to_lowercase()),
                ])
            })
            .collect();
        sqlx::query(
            "INSERT INTO users_search (rowid, username, email, username_pairs, email_pairs) \
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 \
             FROM json_each($1)",
        )
        .bind(serde_json::Value::from(rows).to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ids.len())
    }

    /// Takes every queued user into SQLite's search index, a batch at a time, leaving the
    /// write lock free between batches; merges the index after a large catch-up. How many it
    /// took in.
    pub async fn catch_up_search_index(&self) -> Result<usize> {
        let Pool::Sqlite(pool) = &self.pool else {
            return Ok(0);
        };
        let hints = &self.search_hints;
        let mut taken = 0;
        if self.count_users_waiting_for_search_index().await? > 0 {
            loop {
                let batch = self.index_users_for_search().await?;
                if batch == 0 {
                    break;
                }
                taken += batch;
                // The count goes down as batches go in, but not to 0 while they come full:
                // users queued since it was made wait too.
                let floor = u64::from(batch == usize::try_from(INDEX_BATCH).unwrap_or(0));
                let batch = u64::try_from(batch).unwrap_or(u64::MAX);
                let _ = hints
                    .waiting
                    .fetch_update(Ordering::Release, Ordering::Acquire, |left| {
                        Some(left.saturating_sub(batch).max(floor))
                    });
                tokio::time::sleep(BETWEEN_BATCHES).await;
            }
        }
        // A merge owed (after a large catch-up, or one that failed) is marked before the
        // count reads 0, so a watcher never sees both at rest in between.
        if taken >= MERGE_AFTER {
            hints.merge_owed.store(true, Ordering::Release);
        }
        let merge = hints.merge_owed.load(Ordering::Acquire);
        hints.merging.store(merge, Ordering::Release);
        hints.waiting.store(0, Ordering::Release);
        if merge {
            let merged = self.merge_search_index(pool).await;
            if merged.is_ok() {
                hints.merge_owed.store(false, Ordering::Release);
            }
            hints.merging.store(false, Ordering::Release);
            merged?;
        }
        Ok(taken)
    }

    /// Merges SQLite's search index into one segment, [`MERGE_PAGES`] at a time, leaving the
    /// write lock free between steps.
    async fn merge_search_index(&self, pool: &sqlx::SqlitePool) -> Result<()> {
        loop {
            // FTS5 tells that a merge step did some work by the rows it changed in its own
            // tables: total_changes() moves by 2 or more. On one connection.
            let mut connection = pool.acquire().await?;
            let (before,): (i64,) = sqlx::query_as("SELECT total_changes()")
                .fetch_one(&mut *connection)
                .await?;
            sqlx::query("INSERT INTO users_search (users_search, rank) VALUES ('merge', $1)")
                .bind(-MERGE_PAGES)
                .execute(&mut *connection)
                .await?;
            let (after,): (i64,) = sqlx::query_as("SELECT total_changes()")
                .fetch_one(&mut *connection)
                .await?;
            drop(connection);
            if after - before < 2 {
                return Ok(());
            }
            tokio::time::sleep(BETWEEN_BATCHES).await;
        }
    }

    /// Keeps SQLite's search index in step with the users for as long as the runtime runs:
    /// at once (after an upgrade or a bulk load every user waits), then every few seconds.
    /// Nothing to do on PostgreSQL.
    pub async fn keep_search_index(&self) {
        if !matches!(self.pool, Pool::Sqlite(_)) {
            return;
        }
        let mut tick = tokio::time::interval(KEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.catch_up_search_index().await {
                Ok(taken) if taken >= MERGE_AFTER => {
                    tracing::info!(users = taken, "the admin search's index took in users");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "updating the admin search's index failed"),
            }
        }
    }

    /// How many users SQLite's search index had yet to take in when last counted (0 on
    /// PostgreSQL). A search finds them all the same, checking them one by one.
    pub fn users_waiting_for_search_index(&self) -> u64 {
        self.search_hints.waiting.load(Ordering::Acquire)
    }

    /// Whether SQLite's search index is being merged after a large catch-up (searches work
    /// meanwhile, slower).
    pub fn search_index_merging(&self) -> bool {
        self.search_hints.merging.load(Ordering::Acquire)
    }

    /// Counts the users SQLite's search index has yet to take in, for
    /// [`Self::users_waiting_for_search_index`].
    pub async fn count_users_waiting_for_search_index(&self) -> Result<u64> {
        let Pool::Sqlite(pool) = &self.pool else {
            return Ok(0);
        };
        let (waiting,): (i64,) = sqlx::query_as("SELECT count(*) FROM users_search_pending")
            .fetch_one(pool)
            .await?;
        let waiting = u64::try_from(waiting).unwrap_or(0);
        self.search_hints.waiting.store(waiting, Ordering::Release);
        Ok(waiting)
    }

    /// Samples the users to learn which trigrams are common (see the module).
    pub async fn refresh_search_hints(&self) -> Result<()> {
        let sample: Vec<(String, String)> = match &self.pool {
            Pool::Postgres(pool) => {
                // The planner's estimate of the table's rows: no count.
                let (estimate,): (f32,) =
                    sqlx::query_as("SELECT reltuples FROM pg_class WHERE oid = 'users'::regclass")
                        .fetch_one(pool)
                        .await?;
                let estimate = f64::from(estimate);
                if estimate < SAMPLE_FROM {
                    Vec::new()
                } else {
                    #[expect(clippy::cast_possible_truncation, reason = "a percentage, 0 to 100")]
                    let percent = (SAMPLE_ROWS / estimate * 100.0).min(100.0) as f32;
                    sqlx::query_as(
                        "SELECT lower(username), email FROM users TABLESAMPLE SYSTEM ($1)",
                    )
                    .bind(percent)
                    .fetch_all(pool)
                    .await?
                }
            }
            Pool::Sqlite(pool) => {
                // Ids are dense enough: the largest stands for the count, and random ids
                // below it for a sample (no scan either way).
                let (largest,): (Option<i64>,) = sqlx::query_as("SELECT max(id) FROM users")
                    .fetch_one(pool)
                    .await?;
                #[expect(clippy::cast_precision_loss, reason = "compared with a threshold")]
                let estimate = largest.unwrap_or(0) as f64;
                if estimate < SAMPLE_FROM {
                    Vec::new()
                } else {
                    sqlx::query_as(
                        "WITH RECURSIVE draw(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM draw \
                         WHERE n < $1) \
                         SELECT lower(username), email FROM users WHERE id IN \
                         (SELECT abs(random()) % $2 + 1 FROM draw)",
                    )
                    .bind(SAMPLE_ROWS)
                    .bind(largest)
                    .fetch_all(pool)
                    .await?
                }
            }
        };
        self.search_hints
            .learn(sample.iter().map(|(u, e)| (u.as_str(), e.as_str())));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::{Gram, Learnt, SearchHints, cost, grams, pairs, trigrams};

    /// Hints learnt from (username, address) pairs, borrowed or owned.
    fn hints(users: &[(impl AsRef<str>, impl AsRef<str>)]) -> SearchHints {
        let hints = SearchHints::default();
        hints.learn(users.iter().map(|(u, e)| (u.as_ref(), e.as_ref())));
        hints
    }

    #[test]
    fn the_probe_leaves_out_trigrams_most_users_share() {
        let users: Vec<(String, String)> = (0..100)
            .map(|i| (format!("user{i}"), format!("user{i}@scale.example")))
            .collect();
        let hints = hints(&users);
        // `use` and `ser` are in every name, `er5` in 11 of 100; `r50` in one.
        assert_eq!(hints.probe("user500007", false), "r500007");
        assert_eq!(hints.probe("333346@", false), "333346@");
        // Only common trigrams, or too short: the query as it is.
        assert_eq!(hints.probe("user", false), "user");
        assert_eq!(hints.probe("us", false), "us");
        assert_eq!(hints.probe("@scale.example", false), "@scale.example");
        // For pg_trgm, no stretch across punctuation.
        assert_eq!(hints.probe("333346@", true), "333346");
        assert_eq!(hints.probe("user500007", true), "r500007");
    }

    #[test]
    fn without_a_sample_the_probe_is_the_query() {
        let hints = SearchHints::default();
        assert_eq!(hints.probe("user500007", false), "user500007");
        let hints = hints_of_few();
        assert_eq!(hints.probe("alice", false), "alice");
    }

    fn hints_of_few() -> SearchHints {
        hints(&[("alice", "alice@example.com"), ("bob", "bob@example.com")])
    }

    #[test]
    fn the_probe_cuts_at_character_boundaries() {
        let hints = hints(&[("ééé", "x@y.z"); 10]);
        assert_eq!(hints.probe("éééabcd", false), "ééabcd");
    }

    /// Users as the scale bench makes them: `user{n}` at `scale.example`, with 6-digit numbers.
    fn bench_like() -> SearchHints {
        let users: Vec<(String, String)> = (0..5_000)
            .map(|i| {
                let n = 100_000 + i * 179;
                (format!("user{n}"), format!("user{n}@scale.example"))
            })
            .collect();
        hints(&users)
    }

    /// The texts of `lookups`.
    fn texts<'q>(lookups: &[Gram<'q>]) -> Vec<&'q str> {
        lookups.iter().map(Gram::text).collect()
    }

    #[test]
    fn lookups_read_rare_four_grams_of_a_fragment_of_digits() {
        let hints = bench_like();
        // Digits, not the address's shared `6@s`-like tail; 4-grams, each in about a tenth
        // as many users as a trigram of digits.
        let lookups = hints.lookups("333346@");
        assert!((1..=3).contains(&lookups.len()), "{lookups:?}");
        assert!(
            lookups
                .iter()
                .all(|gram| !gram.is_trigram() && gram.text().chars().all(|c| c.is_ascii_digit())),
            "{lookups:?}"
        );
        // What most users share is never read.
        let lookups = hints.lookups("user500007");
        assert!((1..=3).contains(&lookups.len()), "{lookups:?}");
        assert!(
            texts(&lookups)
                .iter()
                .all(|t| !["use", "ser", "er5", "user", "ser5"].contains(t)),
            "{lookups:?}"
        );
        // Too short for a 4-gram: its trigram; shorter still, nothing.
        assert_eq!(texts(&hints.lookups("500")), ["500"]);
        assert!(hints.lookups("500")[0].is_trigram());
        assert!(hints.lookups("50").is_empty());
    }

    #[test]
    fn a_four_gram_is_asked_for_as_the_trigram_of_its_pairs() {
        let hints = SearchHints::default();
        let lookups = hints.lookups("abcde");
        assert_eq!(texts(&lookups), ["abcd", "bcde"]);
        let indexed = pairs("abcde");
        let symbols: Vec<char> = indexed.chars().collect();
        assert_eq!(symbols.len(), 4);
        assert_eq!(lookups[0].token(), symbols[..3].iter().collect::<String>());
        assert_eq!(lookups[1].token(), symbols[1..].iter().collect::<String>());
        assert_eq!(hints.lookups("abc")[0].token(), "abc");
    }

    #[test]
    fn pairs_of_ascii_characters_have_symbols_of_their_own() {
        let mut seen = HashSet::new();
        for a in 0..128u8 {
            for b in 0..128u8 {
                let symbol = pairs(&format!("{}{}", char::from(a), char::from(b)));
                assert_eq!(symbol.chars().count(), 1);
                assert!(seen.insert(symbol), "{a} {b}");
            }
        }
        // Any other pair: one symbol of plane 15's private use area, ASCII pairs' excluded.
        for text in ["éa", "aé", "日本", "\u{10FFFF}\u{10FFFE}", "ſs"] {
            let symbol = pairs(text).chars().next().unwrap();
            assert!((0xF_4000..=0xF_FFFD).contains(&u32::from(symbol)), "{text}");
            assert!(!seen.contains(&symbol.to_string()), "{text}");
        }
        // Fixed from build to build: the index stores them.
        assert_eq!(pairs("a1"), "\u{F30B1}");
        assert_eq!(pairs("é"), "");
        assert_eq!(pairs(""), "");
    }

    /// What a sample of 10 000 users with these gram counts learnt.
    fn learnt_of(counts: &[(&str, usize)]) -> Learnt {
        Learnt {
            rows: 10_000,
            counts: counts.iter().map(|&(t, c)| (t.to_owned(), c)).collect(),
            common: HashSet::new(),
        }
    }

    /// What looking up `choice` costs with what `learnt` knows.
    fn cost_with(learnt: &Learnt, choice: &[Gram<'_>]) -> f64 {
        cost(choice.iter().map(|&t| (t, learnt.share(t.text))))
    }

    #[test]
    fn trigrams_apart_narrow_more_than_overlapping_ones() {
        let learnt = learnt_of(&[("abc", 40), ("bcd", 40), ("def", 40)]);
        let query = trigrams("abcdef");
        let (abc, bcd, def) = (query[0], query[1], query[3]);
        let cost_of = |choice: &[Gram<'_>]| cost_with(&learnt, choice);
        assert!(cost_of(&[abc, def]) < cost_of(&[abc, bcd]));
        // Reading a second rare trigram costs less than checking what the first leaves.
        assert!(cost_of(&[abc, def]) < cost_of(&[abc]));
        // An uncounted trigram is rarer than a counted one.
        assert!(learnt.share("xyz") < learnt.share("abc"));
    }

    #[test]
    fn a_four_gram_overlapping_a_trigram_narrows_by_its_new_character_only() {
        let learnt = learnt_of(&[("abc", 40), ("abcd", 4), ("cdef", 40)]);
        let (abc, abcd) = (trigrams("abcdef")[0], grams("abcdef", 4)[0]);
        let cost_of = |choice: &[Gram<'_>]| cost_with(&learnt, choice);
        // The rarer 4-gram alone costs less than its trigram, and adding the trigram to it
        // reads more entries without leaving fewer rows.
        assert!(cost_of(&[abcd]) < cost_of(&[abc]));
        assert!(cost_of(&[abcd]) < cost_of(&[abc, abcd]));
    }

    #[test]
    fn without_a_sample_the_longest_grams_are_looked_up_once() {
        let hints = SearchHints::default();
        assert_eq!(texts(&hints.lookups("user5")), ["user", "ser5"]);
        assert_eq!(texts(&hints.lookups("aaaaaa")), ["aaaa"]);
        assert_eq!(texts(&hints.lookups("éèêë")), ["éèêë"]);
        assert_eq!(texts(&hints.lookups("éèê")), ["éèê"]);
        assert!(hints.lookups("ab").is_empty());
    }

    #[test]
    fn a_small_sample_still_knows_what_most_of_it_shares() {
        // 3 of 20 users have `abc`: common (over 5 %), though counted fewer than 5 times.
        let users: Vec<(String, String)> = (0..20)
            .map(|i| {
                let name = if i < 3 {
                    format!("abc{i}")
                } else {
                    format!("u{i}")
                };
                (name.clone(), format!("{name}@x.example"))
            })
            .collect();
        let hints = hints(&users);
        assert_eq!(hints.probe("zzabczz", false), "zzab");
    }

    #[test]
    fn trigrams_start_at_characters() {
        let windows = trigrams("éèêëabc");
        assert_eq!(windows.len(), 5);
        assert_eq!(
            (windows[1].at, windows[1].start, windows[1].text),
            (1, 2, "èêë")
        );
        assert_eq!(
            (windows[4].at, windows[4].start, windows[4].text),
            (4, 8, "abc")
        );
    }
}
