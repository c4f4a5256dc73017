-- Screen captures read by OCR: the recognised text (searchable with FTS5), the words and
-- UI elements found (JSON, in pixels of the stored image), and the image file's path.
CREATE TABLE captures (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    source         TEXT NOT NULL,
    width          INTEGER NOT NULL,
    height         INTEGER NOT NULL,
    image_path     TEXT,
    text           TEXT NOT NULL,
    words_json     TEXT NOT NULL DEFAULT '[]',
    elements_json  TEXT NOT NULL DEFAULT '[]',
    created_at     INTEGER NOT NULL
);

CREATE VIRTUAL TABLE captures_fts USING fts5(
    text,
    content = 'captures',
    content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER captures_fts_insert AFTER INSERT ON captures BEGIN
    INSERT INTO captures_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER captures_fts_delete AFTER DELETE ON captures BEGIN
    INSERT INTO captures_fts(captures_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER captures_fts_update AFTER UPDATE OF text ON captures BEGIN
    INSERT INTO captures_fts(captures_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO captures_fts(rowid, text) VALUES (new.id, new.text);
END;
