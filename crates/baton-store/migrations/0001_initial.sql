-- Baton's first schema: sessions, messages (with FTS5), model runs and settings.
-- Timestamps are milliseconds since the Unix epoch (UTC).

CREATE TABLE sessions (
    id          TEXT PRIMARY KEY NOT NULL,
    title       TEXT NOT NULL,
    model       TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX sessions_updated_at ON sessions(updated_at DESC);

CREATE TABLE messages (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id         TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    role               TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content            TEXT NOT NULL,
    model              TEXT,
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    latency_ms         INTEGER,
    first_token_ms     INTEGER,
    tokens_per_second  REAL,
    cost_usd           REAL,
    created_at         INTEGER NOT NULL
);
CREATE INDEX messages_session ON messages(session_id, id);

CREATE VIRTUAL TABLE messages_fts USING fts5(
    content,
    content = 'messages',
    content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;

CREATE TABLE model_runs (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id            TEXT NOT NULL,
    session_id            TEXT REFERENCES sessions(id) ON DELETE SET NULL,
    model                 TEXT NOT NULL,
    engine                TEXT NOT NULL,
    task                  TEXT NOT NULL,
    status                TEXT NOT NULL CHECK (status IN ('ok', 'error', 'cancelled')),
    error                 TEXT,
    prompt_tokens         INTEGER,
    cached_prompt_tokens  INTEGER,
    completion_tokens     INTEGER,
    first_token_ms        INTEGER,
    total_ms              INTEGER,
    cost_usd              REAL,
    created_at            INTEGER NOT NULL
);
CREATE INDEX model_runs_model ON model_runs(model, created_at);
CREATE INDEX model_runs_request ON model_runs(request_id);

CREATE TABLE settings (
    key         TEXT PRIMARY KEY NOT NULL,
    value       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);
