-- The model registry: every local model file Baton may load, with what its metadata says.
CREATE TABLE models (
    name            TEXT PRIMARY KEY NOT NULL,
    path            TEXT NOT NULL,
    format          TEXT NOT NULL,
    tasks           TEXT NOT NULL,            -- JSON array of task kinds
    architecture    TEXT,
    parameters      INTEGER,
    context_length  INTEGER,
    quantization    TEXT,
    has_chat_template INTEGER NOT NULL DEFAULT 0,
    chat_template_override TEXT,              -- template name used when the file has none
    file_size       INTEGER NOT NULL,
    sha256          TEXT NOT NULL,
    source          TEXT,
    license         TEXT,
    enabled         INTEGER NOT NULL DEFAULT 1,
    added_at        INTEGER NOT NULL,
    verified_at     INTEGER NOT NULL
);
