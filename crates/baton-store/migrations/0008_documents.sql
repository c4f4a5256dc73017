-- Memory, second part: documents the person adds (folders or files, cut into overlapping
-- chunks that are searched and embedded like messages), task outputs as memory, the
-- sources an answer was given, per-session memory, and summaries of older turns.

-- What the person added: a folder (walked, watched) or a single file.
CREATE TABLE doc_roots (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    path      TEXT NOT NULL UNIQUE,
    added_at  INTEGER NOT NULL
);

-- Every file seen under a root: indexed (with its chunks) or skipped (with the reason).
CREATE TABLE documents (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    root_id      INTEGER NOT NULL REFERENCES doc_roots(id) ON DELETE CASCADE,
    path         TEXT NOT NULL UNIQUE,
    format       TEXT NOT NULL,               -- text, markdown, pdf, code, other
    size         INTEGER NOT NULL,            -- bytes on disk when last read
    modified_ms  INTEGER NOT NULL,            -- mtime when last read
    hash         TEXT NOT NULL DEFAULT '',    -- of the extracted text; unchanged text keeps its chunks
    state        TEXT NOT NULL CHECK (state IN ('indexed', 'skipped')),
    reason       TEXT,                        -- why it was skipped
    chunks       INTEGER NOT NULL DEFAULT 0,
    chars        INTEGER NOT NULL DEFAULT 0,
    indexed_at   INTEGER NOT NULL
);
CREATE INDEX documents_by_root ON documents(root_id);

CREATE TABLE doc_chunks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id  INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,            -- 0, 1, … within the document
    text         TEXT NOT NULL,
    UNIQUE (document_id, seq)
);

CREATE VIRTUAL TABLE doc_chunks_fts USING fts5(
    text,
    content = 'doc_chunks',
    content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER doc_chunks_fts_insert AFTER INSERT ON doc_chunks BEGIN
    INSERT INTO doc_chunks_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER doc_chunks_fts_delete AFTER DELETE ON doc_chunks BEGIN
    INSERT INTO doc_chunks_fts(doc_chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER doc_chunks_fts_update AFTER UPDATE OF text ON doc_chunks BEGIN
    INSERT INTO doc_chunks_fts(doc_chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO doc_chunks_fts(rowid, text) VALUES (new.id, new.text);
END;

-- The text of a finished task's output (its `text` field), searchable by words; keyed by
-- the task's rowid.
CREATE VIRTUAL TABLE task_outputs_fts USING fts5(
    text,
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER task_outputs_fts_insert AFTER INSERT ON tasks
    WHEN new.state = 'succeeded' AND json_valid(new.output)
         AND json_type(new.output, '$.text') = 'text' BEGIN
    INSERT INTO task_outputs_fts(rowid, text) VALUES (new.rowid, json_extract(new.output, '$.text'));
END;
CREATE TRIGGER task_outputs_fts_update AFTER UPDATE OF output, state ON tasks BEGIN
    DELETE FROM task_outputs_fts WHERE rowid = old.rowid;
    INSERT INTO task_outputs_fts(rowid, text)
        SELECT new.rowid, json_extract(new.output, '$.text')
         WHERE new.state = 'succeeded' AND json_valid(new.output)
           AND json_type(new.output, '$.text') = 'text';
END;
CREATE TRIGGER task_outputs_fts_delete AFTER DELETE ON tasks BEGIN
    DELETE FROM task_outputs_fts WHERE rowid = old.rowid;
END;
INSERT INTO task_outputs_fts(rowid, text)
    SELECT rowid, json_extract(output, '$.text') FROM tasks
     WHERE state = 'succeeded' AND json_valid(output) AND json_type(output, '$.text') = 'text';

-- Vectors may now describe document chunks and task outputs too: the table is rebuilt
-- with the wider CHECK (SQLite cannot alter one), keeping every vector. The triggers that
-- name it go first (a rename re-checks every trigger) and come back below.
DROP TRIGGER messages_forget_vector;
DROP TRIGGER messages_stale_vector;
DROP TRIGGER captures_forget_vector;
DROP TRIGGER captures_stale_vector;
CREATE TABLE embeddings_new (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('message', 'capture', 'chunk', 'task')),
    ref_id      INTEGER NOT NULL,
    model       TEXT NOT NULL,
    vector      BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (kind, ref_id, model)
);
INSERT INTO embeddings_new SELECT id, kind, ref_id, model, vector, created_at FROM embeddings;
DROP TABLE embeddings;
ALTER TABLE embeddings_new RENAME TO embeddings;
CREATE INDEX embeddings_by_model ON embeddings(model, kind);

-- The triggers of 0007, and the same for chunks and task outputs.
CREATE TRIGGER messages_forget_vector AFTER DELETE ON messages BEGIN
    DELETE FROM embeddings WHERE kind = 'message' AND ref_id = old.id;
END;
CREATE TRIGGER messages_stale_vector AFTER UPDATE OF content ON messages BEGIN
    DELETE FROM embeddings WHERE kind = 'message' AND ref_id = old.id;
END;
CREATE TRIGGER captures_forget_vector AFTER DELETE ON captures BEGIN
    DELETE FROM embeddings WHERE kind = 'capture' AND ref_id = old.id;
END;
CREATE TRIGGER captures_stale_vector AFTER UPDATE OF text ON captures BEGIN
    DELETE FROM embeddings WHERE kind = 'capture' AND ref_id = old.id;
END;
CREATE TRIGGER doc_chunks_forget_vector AFTER DELETE ON doc_chunks BEGIN
    DELETE FROM embeddings WHERE kind = 'chunk' AND ref_id = old.id;
END;
CREATE TRIGGER doc_chunks_stale_vector AFTER UPDATE OF text ON doc_chunks BEGIN
    DELETE FROM embeddings WHERE kind = 'chunk' AND ref_id = old.id;
END;
CREATE TRIGGER tasks_forget_vector AFTER DELETE ON tasks BEGIN
    DELETE FROM embeddings WHERE kind = 'task' AND ref_id = old.rowid;
END;
CREATE TRIGGER tasks_stale_vector AFTER UPDATE OF output ON tasks BEGIN
    DELETE FROM embeddings WHERE kind = 'task' AND ref_id = old.rowid;
END;

-- Memory per session: NULL follows the global setting, 0 off, 1 on.
ALTER TABLE sessions ADD COLUMN memory INTEGER;

-- The numbered sources an answer was given (JSON list), shown under it.
ALTER TABLE messages ADD COLUMN sources TEXT;

-- Older turns of a long conversation, summarised by a model instead of dropped. The newest
-- summary of a session covers every message up to `through_id`.
CREATE TABLE session_summaries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    through_id  INTEGER NOT NULL,
    content     TEXT NOT NULL,
    model       TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX session_summaries_by_session ON session_summaries(session_id, through_id);
