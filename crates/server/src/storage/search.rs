//! What the admin search needs besides its indexes: which trigrams are too common to look up.
//!
//! A trigram index (`pg_trgm` GIN on PostgreSQL, FTS5's trigram tokenizer on SQLite) answers a
//! search for any part of a name by reading the entries of every trigram of the query, and a
//! trigram that most users share (`use` and `ser` when every name starts with
//! `user`, `com` in addresses) has an entry as long as the table: at a million users, reading two
//! of them costs more than everything else a search does. Like a search engine's stop words,
//! those trigrams are left out of the index probe: the probe looks up the longest stretch of the
//! query whose trigrams are all uncommon, and the query itself is checked on the rows it finds.
//! Which trigrams are common is learnt from a sample of the users, taken at start-up and every
//! half hour (and only past 50 000 users: below, every entry is short).

use std::{
    collections::{HashMap, HashSet},
    sync::RwLock,
};

use super::{Pool, Storage};
use crate::error::Result;

/// A trigram in more than this share of the sampled users is common.
const COMMON_SHARE: f64 = 0.05;
/// About how many users a sample reads.
const SAMPLE_ROWS: f64 = 10_000.0;
/// Below this many users, every trigram is cheap to look up: no sample is taken.
const SAMPLE_FROM: f64 = 50_000.0;

/// The trigrams common among users, as the last sample found them.
#[derive(Debug, Default)]
pub struct SearchHints {
    common: RwLock<HashSet<String>>,
}

impl SearchHints {
    /// Learns the common trigrams from a sample of (lower-cased username, address) pairs.
    fn learn<'a>(&self, sample: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let mut rows = 0usize;
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (username, email) in sample {
            rows += 1;
            let mut seen = HashSet::new();
            for text in [username, email] {
                let chars: Vec<char> = text.chars().collect();
                for window in chars.windows(3) {
                    seen.insert(window.iter().collect::<String>());
                }
            }
            for trigram in seen {
                *counts.entry(trigram).or_default() += 1;
            }
        }
        #[expect(
            clippy::cast_precision_loss,
            reason = "a share of a sample; exact to 2^52 rows"
        )]
        let threshold = rows as f64 * COMMON_SHARE;
        #[expect(clippy::cast_precision_loss, reason = "as above")]
        let common = counts
            .into_iter()
            .filter(|(_, count)| *count as f64 > threshold)
            .map(|(trigram, _)| trigram)
            .collect();
        if let Ok(mut guard) = self.common.write() {
            *guard = common;
        }
    }

    /// The part of `query` (lower-cased) for the index to look up: its longest stretch whose
    /// trigrams are all uncommon. The whole query when none of its trigrams is common, when
    /// all are, or when it is shorter than a trigram. With `words_only` (pg_trgm, which makes
    /// trigrams of letters and digits only), a trigram with any other character is left out
    /// of the stretch too.
    pub fn probe<'q>(&self, query: &'q str, words_only: bool) -> &'q str {
        let Ok(common) = self.common.read() else {
            return query;
        };
        if common.is_empty() {
            return query;
        }
        // Byte offsets of every character, and of the end.
        let bounds: Vec<usize> = query
            .char_indices()
            .map(|(at, _)| at)
            .chain([query.len()])
            .collect();
        let windows = bounds.len().saturating_sub(3);
        let uncommon: Vec<bool> = (0..windows)
            .map(|i| {
                let window = &query[bounds[i]..bounds[i + 3]];
                !common.contains(window)
                    && (!words_only || window.chars().all(char::is_alphanumeric))
            })
            .collect();
        // The longest run of uncommon windows: (first window, how many).
        let (mut best, mut run_start, mut run) = ((0, 0), 0, 0);
        for (i, &ok) in uncommon.iter().enumerate() {
            if ok {
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
        if count == 0 || count == windows {
            return query;
        }
        &query[bounds[first]..bounds[first + count + 2]]
    }
}

impl Storage {
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
    use super::SearchHints;

    fn hints(users: &[(&str, &str)]) -> SearchHints {
        let hints = SearchHints::default();
        hints.learn(users.iter().copied());
        hints
    }

    #[test]
    fn the_probe_leaves_out_trigrams_most_users_share() {
        let users: Vec<(String, String)> = (0..100)
            .map(|i| (format!("user{i}"), format!("user{i}@scale.example")))
            .collect();
        let hints = hints(
            &users
                .iter()
                .map(|(u, e)| (u.as_str(), e.as_str()))
                .collect::<Vec<_>>(),
        );
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
}
