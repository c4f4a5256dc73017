-- Orchestration: remote engines, routing decisions, run modes/steps and user ratings.

-- Remote OpenAI-compatible endpoints. API keys are never stored here (OS keyring or the
-- encrypted key file); `key_store` only says where to look.
CREATE TABLE engines (
    name                TEXT PRIMARY KEY NOT NULL,
    base_url            TEXT NOT NULL,
    models              TEXT NOT NULL,          -- JSON array of the endpoint's model ids
    input_usd_per_mtok  REAL NOT NULL DEFAULT 0,
    output_usd_per_mtok REAL NOT NULL DEFAULT 0,
    key_store           TEXT NOT NULL CHECK (key_store IN ('none', 'keyring', 'file')),
    enabled             INTEGER NOT NULL DEFAULT 1,
    added_at            INTEGER NOT NULL
);

-- Every routing decision with its reasons; `message_id` links it to the answer it produced.
CREATE TABLE routing_decisions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT NOT NULL,
    session_id  TEXT REFERENCES sessions(id) ON DELETE SET NULL,
    message_id  INTEGER REFERENCES messages(id) ON DELETE SET NULL,
    mode        TEXT NOT NULL,
    model       TEXT NOT NULL,
    domain      TEXT NOT NULL,
    reasons     TEXT NOT NULL,                  -- JSON array of strings
    canary_of   TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX routing_decisions_request ON routing_decisions(request_id);
CREATE INDEX routing_decisions_message ON routing_decisions(message_id);

-- Which mode a run served and which step it was (answer, critique, judge, revise).
ALTER TABLE model_runs ADD COLUMN mode TEXT NOT NULL DEFAULT 'single';
ALTER TABLE model_runs ADD COLUMN step TEXT NOT NULL DEFAULT 'answer';
-- The orchestration that produced an answer (single, fanout, refine), for per-mode stats.
ALTER TABLE messages ADD COLUMN mode TEXT;
-- Thumbs up (1) or down (-1) by the user.
ALTER TABLE messages ADD COLUMN rating INTEGER CHECK (rating IN (-1, 1));
