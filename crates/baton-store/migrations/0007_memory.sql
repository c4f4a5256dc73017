-- Memory: one vector per stored text (a message, a capture) and embedding model, beside
-- the row it describes. A row deleted or rewritten loses its vector in the same
-- transaction (the triggers), so a vector never outlives or misdescribes its row; a row
-- without a vector (new, or after a crash before its embedding) is found and embedded by
-- the back-fill.
CREATE TABLE embeddings (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('message', 'capture')),
    ref_id      INTEGER NOT NULL,
    model       TEXT NOT NULL,
    -- little-endian float32, unit length (sqlite-vec's vector format)
    vector      BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (kind, ref_id, model)
);
CREATE INDEX embeddings_by_model ON embeddings(model, kind);

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
