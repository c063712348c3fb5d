-- Admin search by any part of a username or an address, by index: an FTS5 table with the
-- trigram tokenizer (case-insensitive substrings of 3 characters or more) over users, kept in
-- step by triggers. Sign-ins update other columns and do not touch it.
CREATE VIRTUAL TABLE users_search USING fts5(
    username, email, content = 'users', content_rowid = 'id', tokenize = 'trigram'
);
INSERT INTO users_search (users_search) VALUES ('rebuild');

CREATE TRIGGER users_search_insert AFTER INSERT ON users BEGIN
    INSERT INTO users_search (rowid, username, email) VALUES (new.id, new.username, new.email);
END;

CREATE TRIGGER users_search_delete AFTER DELETE ON users BEGIN
    INSERT INTO users_search (users_search, rowid, username, email)
        VALUES ('delete', old.id, old.username, old.email);
END;

CREATE TRIGGER users_search_update AFTER UPDATE OF username, email ON users BEGIN
    INSERT INTO users_search (users_search, rowid, username, email)
        VALUES ('delete', old.id, old.username, old.email);
    INSERT INTO users_search (rowid, username, email) VALUES (new.id, new.username, new.email);
END;
