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
//! - SQLite's index keeps which rows hold a trigram, not where (`detail = none`, a fifth of
//!   the size), and is asked for the rows holding one to three of the query's rarest
//!   trigrams, or all of them when there is no sample ([`SearchHints::lookups`]).
//!
//! How common each trigram is, is learnt from a sample of the users, taken at start-up and every
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
/// Trigrams in fewer sampled users than this are not counted (they are all rare, and a sample
/// of random text would otherwise keep every trigram it read).
const COUNTED_FROM: usize = 5;
/// The most trigrams a lookup reads (with a sample).
const MOST_LOOKUPS: usize = 3;
/// How many of the query's rarest trigrams the lookup is chosen among (2^8 subsets at most).
const RAREST_CONSIDERED: usize = 8;
/// Checking a row the index found costs about this many times as much as reading one index
/// entry (measured at a million users: ~1 µs against ~25 ns).
const ROW_VERSUS_ENTRY: f64 = 40.0;

/// What the last sample of users found.
#[derive(Debug, Default)]
pub struct SearchHints {
    learnt: RwLock<Learnt>,
}

#[derive(Debug, Default)]
struct Learnt {
    /// Users sampled; none when the table was too small to need it.
    rows: usize,
    /// How many sampled users have each trigram, for trigrams counted at least
    /// [`COUNTED_FROM`] times.
    counts: HashMap<String, usize>,
    /// The trigrams in more than [`COMMON_SHARE`] of the sampled users.
    common: HashSet<String>,
}

impl Learnt {
    /// The share of users estimated to have `trigram`.
    #[expect(
        clippy::cast_precision_loss,
        reason = "counts of a sample; exact to 2^52 rows"
    )]
    fn share(&self, trigram: &str) -> f64 {
        // An uncounted trigram is somewhere below COUNTED_FROM: take half of it.
        let count = self
            .counts
            .get(trigram)
            .map_or(COUNTED_FROM as f64 / 2.0, |count| *count as f64);
        count / self.rows.max(1) as f64
    }
}

/// What looking up `choice` costs, in index entries per user: its entries, and the rows they
/// leave to check. `choice` comes with each trigram's share of users, in the order the
/// trigrams stand in the query. Trigrams are taken as independent where they do not overlap; a
/// trigram sharing characters with another narrows by its new characters only.
fn cost<'q>(choice: impl Iterator<Item = (Trigram<'q>, f64)>) -> f64 {
    let (mut entries, mut left, mut covered) = (0.0, 1.0, 0);
    for (trigram, share) in choice {
        let new = (trigram.at + 3).saturating_sub(trigram.at.max(covered));
        entries += share;
        #[expect(clippy::cast_precision_loss, reason = "0 to 3")]
        let narrowing = share.powf(new as f64 / 3.0);
        left *= narrowing;
        covered = covered.max(trigram.at + 3);
    }
    entries + left * ROW_VERSUS_ENTRY
}

/// A trigram of a query: where it starts (in characters and in bytes) and its text.
#[derive(Debug, Clone, Copy)]
struct Trigram<'q> {
    at: usize,
    start: usize,
    text: &'q str,
}

/// The trigrams of `query`, in order.
fn trigrams(query: &str) -> Vec<Trigram<'_>> {
    // Byte offsets of every character, and of the end.
    let bounds: Vec<usize> = query
        .char_indices()
        .map(|(at, _)| at)
        .chain([query.len()])
        .collect();
    (0..bounds.len().saturating_sub(3))
        .map(|at| Trigram {
            at,
            start: bounds[at],
            text: &query[bounds[at]..bounds[at + 3]],
        })
        .collect()
}

impl SearchHints {
    /// Learns how common trigrams are from a sample of (lower-cased username, address) pairs.
    fn learn<'a>(&self, sample: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let mut rows = 0usize;
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (username, email) in sample {
            rows += 1;
            let mut seen = HashSet::new();
            for text in [username, email] {
                seen.extend(trigrams(text).into_iter().map(|trigram| trigram.text));
            }
            for trigram in seen {
                *counts.entry(trigram.to_owned()).or_default() += 1;
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
            .filter(|(_, count)| **count as f64 > threshold)
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

    /// The trigrams of `query` (lower-cased) for an index of which rows hold each trigram to
    /// look up: every row holding the query holds all of them. Without a sample, all of the
    /// query's trigrams (each entry is short). With one, the few that cost least to read and
    /// then check the rows they leave (see [`cost`]). Empty for a query shorter than a
    /// trigram.
    pub fn lookups<'q>(&self, query: &'q str) -> Vec<&'q str> {
        let mut windows = trigrams(query);
        let mut seen = HashSet::new();
        windows.retain(|trigram| seen.insert(trigram.text));
        let learnt = match self.learnt.read() {
            Ok(learnt) if learnt.rows > 0 => learnt,
            _ => return windows.into_iter().map(|trigram| trigram.text).collect(),
        };
        // Each share looked up once, the rarest first.
        let mut windows: Vec<(Trigram<'q>, f64)> = windows
            .into_iter()
            .map(|trigram| (trigram, learnt.share(trigram.text)))
            .collect();
        windows.sort_by(|a, b| a.1.total_cmp(&b.1));
        windows.truncate(RAREST_CONSIDERED);
        // Their indices in the order they stand in the query, for `cost`.
        let mut in_query: Vec<usize> = (0..windows.len()).collect();
        in_query.sort_by_key(|&i| windows[i].0.at);
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
        (0..windows.len())
            .filter(|i| subset & (1 << i) != 0)
            .map(|i| windows[i].0.text)
            .collect()
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
    use std::collections::HashSet;

    use super::{Learnt, SearchHints, Trigram, cost, trigrams};

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

    #[test]
    fn lookups_read_two_rare_trigrams_apart() {
        let hints = bench_like();
        // Digits apart from each other, not the address's shared `6@s`-like tail.
        let lookups = hints.lookups("333346@");
        assert_eq!(lookups.len(), 2, "{lookups:?}");
        let starts: Vec<usize> = lookups.iter().map(|t| "333346@".find(t).unwrap()).collect();
        assert!(starts[0].abs_diff(starts[1]) >= 3, "{lookups:?}");
        assert!(
            lookups
                .iter()
                .all(|t| t.chars().all(|c| c.is_ascii_digit())),
            "{lookups:?}"
        );
        // What most users share is never read.
        let lookups = hints.lookups("user500007");
        assert!((1..=3).contains(&lookups.len()), "{lookups:?}");
        assert!(
            lookups.iter().all(|t| !["use", "ser", "er5"].contains(t)),
            "{lookups:?}"
        );
        assert_eq!(hints.lookups("500"), vec!["500"]);
        assert!(hints.lookups("50").is_empty());
    }

    #[test]
    fn trigrams_apart_narrow_more_than_overlapping_ones() {
        let learnt = Learnt {
            rows: 10_000,
            counts: [("abc", 40), ("bcd", 40), ("def", 40)]
                .into_iter()
                .map(|(t, c)| (t.to_owned(), c))
                .collect(),
            common: HashSet::new(),
        };
        let query = trigrams("abcdef");
        let (abc, bcd, def) = (query[0], query[1], query[3]);
        let cost_of =
            |choice: &[Trigram<'_>]| cost(choice.iter().map(|&t| (t, learnt.share(t.text))));
        assert!(cost_of(&[abc, def]) < cost_of(&[abc, bcd]));
        // Reading a second rare trigram costs less than checking what the first leaves.
        assert!(cost_of(&[abc, def]) < cost_of(&[abc]));
        // An uncounted trigram is rarer than a counted one.
        assert!(learnt.share("xyz") < learnt.share("abc"));
    }

    #[test]
    fn without_a_sample_every_trigram_is_looked_up_once() {
        let hints = SearchHints::default();
        assert_eq!(hints.lookups("user5"), vec!["use", "ser", "er5"]);
        assert_eq!(hints.lookups("aaaaa"), vec!["aaa"]);
        assert_eq!(hints.lookups("éèêë"), vec!["éèê", "èêë"]);
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
