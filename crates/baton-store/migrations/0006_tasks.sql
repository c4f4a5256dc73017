-- Tasks and workflows: a durable queue. A run is one workflow instance (a template run, a
-- single task, a schedule firing); its tasks form a graph through task_deps. Every change of
-- a task's state is stored in task_events with its time and reason.

CREATE TABLE task_runs (
    id          TEXT PRIMARY KEY,               -- UUID v7
    name        TEXT NOT NULL,                  -- what a person sees: template name or the task's
    template    TEXT,                           -- name@version when made from a template
    params      TEXT NOT NULL DEFAULT '{}',     -- JSON parameters the steps are rendered over
    origin      TEXT NOT NULL DEFAULT 'cli',    -- cli, app, api, schedule:NAME, worker
    created_at  INTEGER NOT NULL
);

CREATE TABLE tasks (
    id            TEXT PRIMARY KEY,             -- UUID v7
    run_id        TEXT NOT NULL REFERENCES task_runs(id) ON DELETE CASCADE,
    step          TEXT NOT NULL,                -- the step's id within its run
    kind          TEXT NOT NULL,                -- chat, transcribe, speak, ocr, batch, approval, write, noop
    input         TEXT NOT NULL,                -- JSON; strings are templates over params and earlier outputs
    resource      TEXT NOT NULL,                -- what it runs on: chat:MODEL, stt, tts, ocr, person, none
    memory_mb     INTEGER NOT NULL DEFAULT 0,   -- memory the resource needs when not loaded
    priority      INTEGER NOT NULL DEFAULT 0,   -- higher first
    deadline      INTEGER,                      -- ms since the epoch
    position      INTEGER NOT NULL,             -- order within a priority (set by hand reorder)
    state         TEXT NOT NULL CHECK (state IN ('queued', 'ready', 'running', 'succeeded',
                      'failed', 'cancelled', 'waiting_approval', 'skipped')),
    attempts      INTEGER NOT NULL DEFAULT 0,   -- attempts started
    max_attempts  INTEGER NOT NULL DEFAULT 3,
    backoff_ms    INTEGER NOT NULL DEFAULT 2000,
    timeout_ms    INTEGER,
    not_before    INTEGER,                      -- a retry waits for its backoff
    lease_owner   TEXT,                         -- the worker that runs it
    lease_until   INTEGER,                      -- the lease lapses unless renewed
    progress      REAL,                         -- 0..1 while running
    checkpoint    TEXT,                         -- JSON a resumable kind (batch) continues from
    output        TEXT,                         -- JSON
    error         TEXT,
    deadline_missed INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER,
    UNIQUE (run_id, step)
);

CREATE INDEX tasks_by_state ON tasks(state, priority DESC, position);
CREATE INDEX tasks_by_run ON tasks(run_id);

CREATE TABLE task_deps (
    task_id     TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    depends_on  TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    PRIMARY KEY (task_id, depends_on)
);

CREATE INDEX task_deps_reverse ON task_deps(depends_on);

CREATE TABLE task_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    from_state  TEXT,                           -- NULL when the task was created
    to_state    TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    worker      TEXT,
    reason      TEXT NOT NULL
);

CREATE INDEX task_events_by_task ON task_events(task_id, id);

CREATE TABLE task_logs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    level       TEXT NOT NULL,
    message     TEXT NOT NULL
);

CREATE INDEX task_logs_by_task ON task_logs(task_id, id);

CREATE TABLE task_templates (
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    yaml        TEXT NOT NULL,
    builtin     INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE task_schedules (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    cron        TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    template    TEXT NOT NULL,                  -- name or name@version
    params      TEXT NOT NULL DEFAULT '{}',
    enabled     INTEGER NOT NULL DEFAULT 1,
    missed      TEXT NOT NULL CHECK (missed IN ('run_once', 'skip')),
    next_run_at INTEGER,                        -- ms since the epoch; NULL when disabled
    last_run_at INTEGER,
    last_run_id TEXT,
    created_at  INTEGER NOT NULL
);
