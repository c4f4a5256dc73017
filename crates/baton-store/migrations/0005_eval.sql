-- Evaluation: question sets run over models and modes, every answer scored. The router
-- reads per-domain pass rates from here as its prior.

CREATE TABLE eval_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    sets        TEXT NOT NULL,                  -- JSON array of set names
    targets     TEXT NOT NULL,                  -- JSON array of "model/mode" labels
    machine     TEXT NOT NULL DEFAULT '',       -- cores, memory and GPU it ran on
    status      TEXT NOT NULL CHECK (status IN ('running', 'done', 'cancelled', 'failed')),
    started_at  INTEGER NOT NULL,
    finished_at INTEGER
);

CREATE TABLE eval_results (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id            INTEGER NOT NULL REFERENCES eval_runs(id) ON DELETE CASCADE,
    set_name          TEXT NOT NULL,
    item_id           TEXT NOT NULL,
    domain            TEXT NOT NULL,
    model             TEXT NOT NULL,            -- what was asked for ("auto" when routed)
    mode              TEXT NOT NULL,            -- single, fanout, refine
    answered_by       TEXT,                     -- the model whose answer was kept
    passed            INTEGER NOT NULL CHECK (passed IN (0, 1)),
    detail            TEXT NOT NULL,            -- why it passed or failed
    answer            TEXT NOT NULL,
    error             TEXT,                     -- the engine error, when there was no answer
    latency_ms        INTEGER NOT NULL,
    completion_tokens INTEGER,
    tokens_per_second REAL,
    cost_usd          REAL,
    created_at        INTEGER NOT NULL,
    UNIQUE (run_id, set_name, item_id, model, mode)
);
CREATE INDEX eval_results_target ON eval_results(model, mode, domain);
