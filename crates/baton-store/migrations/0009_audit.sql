-- The local API's audit log: one row per HTTP request to `baton serve`, refused ones
-- (401, 403, 429) included. Prompt text is kept only when `[api] audit_prompts = true`.

CREATE TABLE api_audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,               -- ms since the epoch, when the request arrived
    client      TEXT NOT NULL,                  -- the peer's address, e.g. 127.0.0.1:51234
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,                  -- without the query string
    status      INTEGER NOT NULL,               -- the HTTP status answered
    outcome     TEXT NOT NULL,                  -- ok, unauthorized, host_refused, origin_refused,
                                                -- rate_limited, refused, failed, disconnected
    duration_ms INTEGER NOT NULL,               -- until the last byte of the answer (or the drop)
    model       TEXT,                           -- the model asked for or answering, if any
    prompt      TEXT                            -- only with [api] audit_prompts = true
);
CREATE INDEX api_audit_at ON api_audit(at);
