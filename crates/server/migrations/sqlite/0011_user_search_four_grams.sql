-- The admin search's index holds the 4-grams of each name and address beside their trigrams:
-- a 4-gram is in about a tenth as many users as a trigram, so a fragment of digits such as
-- `333346@` reads a tenth of the entries at a million users. FTS5 only makes trigrams, so the
-- 4-grams go in as the trigrams of a copy in which each pair of neighbouring characters is one
-- symbol, which Tollgate computes (storage/search.rs): triggers cannot. So the index keeps no
-- copy of the text (contentless, rows deleted by id), triggers only queue the users to take
-- in again, and Tollgate takes them in, every few seconds and at start-up (every user after
-- this upgrade: about a minute at a million). A search checks the queued users apart, so it is
-- exact meanwhile.
DROP TRIGGER users_search_insert;
DROP TRIGGER users_search_delete;
DROP TRIGGER users_search_update;
DROP TABLE users_search;

CREATE VIRTUAL TABLE users_search USING fts5(
    username, email, username_pairs, email_pairs,
    content = '', contentless_delete = 1, tokenize = 'trigram', detail = none
);

-- Users added, renamed, readdressed or deleted since the index last took them in.
CREATE TABLE users_search_pending (id INTEGER PRIMARY KEY);
INSERT INTO users_search_pending (id) SELECT id FROM users;

CREATE TRIGGER users_search_insert AFTER INSERT ON users BEGIN
    INSERT OR IGNORE INTO users_search_pending (id) VALUES (new.id);
END;

CREATE TRIGGER users_search_delete AFTER DELETE ON users BEGIN
    INSERT OR IGNORE INTO users_search_pending (id) VALUES (old.id);
END;

CREATE TRIGGER users_search_update AFTER UPDATE OF username, email ON users BEGIN
    INSERT OR IGNORE INTO users_search_pending (id) VALUES (new.id);
END;
