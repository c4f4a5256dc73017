//! A batch's items and results files: items streamed from a CSV (header row), a JSONL file
//! or a glob of files, one at a time (a 50 MB file is never loaded whole); results written
//! as CSV, JSONL or a Markdown table, appended row by row so a checkpoint can name a
//! length to continue from.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use baton_tasks::BatchFormat;
use serde_json::{json, Map, Value};

/// A result row: columns in order.
pub(crate) type Row = Vec<(String, Value)>;

/// The items of a batch, read lazily.
pub(crate) enum Items {
    Csv {
        records: csv::StringRecordsIntoIter<BufReader<File>>,
        headers: Vec<String>,
        total: u64,
    },
    Jsonl {
        lines: std::io::Lines<BufReader<File>>,
        line: u64,
        total: u64,
    },
    Files {
        paths: std::vec::IntoIter<PathBuf>,
        total: u64,
    },
}

/// Counts the lines of a file in 64 KiB chunks.
fn count_lines(path: &Path) -> Result<u64, String> {
    let mut file = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut buf = vec![0u8; 1 << 16];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    Ok(lines + u64::from(last != b'\n'))
}

impl Items {
    /// Opens `over`: a `.csv` or `.jsonl` file, a folder (its files) or a glob.
    pub(crate) fn open(over: &str) -> Result<Items, String> {
        let lower = over.to_lowercase();
        let path = Path::new(over);
        if lower.ends_with(".csv") || lower.ends_with(".jsonl") {
            if !path.is_file() {
                return Err(format!("{over} does not exist or is not a file"));
            }
            let lines = count_lines(path)?;
            let file =
                BufReader::new(File::open(path).map_err(|e| format!("cannot read {over}: {e}"))?);
            if lower.ends_with(".csv") {
                let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(file);
                let headers: Vec<String> = reader
                    .headers()
                    .map_err(|e| format!("{over}: the header row cannot be read: {e}"))?
                    .iter()
                    .map(|h| h.trim().to_owned())
                    .collect();
                if headers.iter().all(String::is_empty) {
                    return Err(format!("{over} has no header row naming its columns"));
                }
                return Ok(Items::Csv {
                    records: reader.into_records(),
                    headers,
                    total: lines.saturating_sub(1),
                });
            }
            return Ok(Items::Jsonl {
                lines: file.lines(),
                line: 0,
                total: lines,
            });
        }
        let pattern = if path.is_dir() {
            format!("{}/*", over.trim_end_matches('/'))
        } else {
            over.to_owned()
        };
        let mut paths: Vec<PathBuf> = glob::glob(&pattern)
            .map_err(|e| format!("`{over}` is not a file pattern: {e}"))?
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        if paths.is_empty() {
            return Err(format!(
                "`{over}` matches no files; give a .csv or .jsonl file, a folder or a pattern such as recordings/*.wav"
            ));
        }
        paths.sort();
        let total = paths.len() as u64;
        Ok(Items::Files {
            paths: paths.into_iter(),
            total,
        })
    }

    /// About how many items there are (lines of the file; exact for globs).
    pub(crate) fn total_hint(&self) -> Option<u64> {
        match self {
            Items::Csv { total, .. } | Items::Jsonl { total, .. } | Items::Files { total, .. } => {
                Some(*total)
            }
        }
    }
}

impl Iterator for Items {
    type Item = Result<Value, String>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Items::Csv {
                records, headers, ..
            } => {
                let record = records.next()?;
                Some(
                    record
                        .map(|r| {
                            let mut item = Map::new();
                            for (i, h) in headers.iter().enumerate() {
                                item.insert(h.clone(), json!(r.get(i).unwrap_or("")));
                            }
                            // The header's order, for the results' columns.
                            item.insert(COLUMNS.into(), json!(headers));
                            Value::Object(item)
                        })
                        .map_err(|e| format!("this row cannot be read: {e}")),
                )
            }
            Items::Jsonl { lines, line, .. } => loop {
                let text = lines.next()?;
                *line += 1;
                let text = match text {
                    Ok(t) => t,
                    Err(e) => return Some(Err(format!("line {line} cannot be read: {e}"))),
                };
                if text.trim().is_empty() {
                    continue;
                }
                return Some(
                    serde_json::from_str::<Value>(&text)
                        .map(|v| match v {
                            Value::Object(_) => v,
                            other => json!({ "value": other }),
                        })
                        .map_err(|e| format!("line {line} is not JSON: {e}")),
                );
            },
            Items::Files { paths, .. } => {
                let path = paths.next()?;
                Some(Ok(json!({
                    "path": path.display().to_string(),
                    "name": path.file_name().map(|n| n.to_string_lossy().into_owned()),
                    "stem": path.file_stem().map(|n| n.to_string_lossy().into_owned()),
                })))
            }
        }
    }
}

/// Opens the results file to append from `len` bytes (0: a new file).
pub(crate) fn open_results(path: &Path, len: u64) -> Result<File, String> {
    let err = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    if len == 0 {
        return File::create(path).map_err(err);
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| {
            format!(
                "the results file {} of the earlier attempt cannot be opened ({e}); retry the task to start over",
                path.display()
            )
        })?;
    file.set_len(len).map_err(err)?;
    file.seek(SeekFrom::End(0)).map_err(err)?;
    Ok(file)
}

/// The hidden field of a CSV item that holds its header's order.
const COLUMNS: &str = "__columns";

/// An item as templates see it (without the column order).
pub(crate) fn item_fields(item: &Value) -> Value {
    let mut item = item.clone();
    if let Value::Object(map) = &mut item {
        map.remove(COLUMNS);
    }
    item
}

/// A result row: the item's number, its fields (a CSV's in its header's order), the
/// output's fields (`text` and `file` first; one level of nesting as `key.sub`), and the
/// error.
pub(crate) fn row(index: u64, item: &Value, output: &Value, error: Option<&str>) -> Row {
    let mut row: Row = vec![("index".into(), json!(index + 1))];
    if let Value::Object(map) = item {
        let order: Vec<String> = match map.get(COLUMNS) {
            Some(Value::Array(cols)) => cols
                .iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect(),
            _ => map.keys().cloned().collect(),
        };
        row.extend(
            order
                .into_iter()
                .filter_map(|k| map.get(&k).map(|v| (k.clone(), v.clone()))),
        );
    }
    if let Value::Object(map) = output {
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort_by_key(|k| (k.as_str() != "text", k.as_str() != "file"));
        for k in keys {
            let v = &map[k];
            match v {
                Value::Object(inner) => row.extend(
                    inner
                        .iter()
                        .map(|(ik, iv)| (format!("{k}.{ik}"), iv.clone())),
                ),
                other => row.push((k.clone(), other.clone())),
            }
        }
    }
    row.push(("error".into(), error.map_or(Value::Null, |e| json!(e))));
    row
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn markdown_cell(text: &str) -> String {
    text.replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace('\n', "<br>")
}

/// Writes the header (CSV, Markdown; nothing for JSONL).
pub(crate) fn write_header(
    out: &mut File,
    format: BatchFormat,
    columns: &[String],
) -> Result<(), String> {
    let err = |e: std::io::Error| format!("cannot write the results: {e}");
    match format {
        BatchFormat::Csv => {
            let mut w = csv::WriterBuilder::new().from_writer(&mut *out);
            w.write_record(columns).map_err(|e| e.to_string())?;
            w.flush().map_err(err)
        }
        BatchFormat::Markdown => {
            let head: Vec<String> = columns.iter().map(|c| markdown_cell(c)).collect();
            writeln!(out, "| {} |", head.join(" | ")).map_err(err)?;
            writeln!(out, "|{}", "---|".repeat(columns.len())).map_err(err)
        }
        BatchFormat::Jsonl => Ok(()),
    }
}

/// Appends one row in the columns of the first row (later fields outside them are left
/// out of CSV and Markdown; JSONL keeps them all).
pub(crate) fn write_row(
    out: &mut File,
    format: BatchFormat,
    columns: &[String],
    row: &Row,
) -> Result<(), String> {
    let err = |e: std::io::Error| format!("cannot write the results: {e}");
    let get = |c: &str| row.iter().find(|(k, _)| k == c).map(|(_, v)| v);
    match format {
        BatchFormat::Csv => {
            let mut w = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(&mut *out);
            w.write_record(columns.iter().map(|c| cell(get(c))))
                .map_err(|e| e.to_string())?;
            w.flush().map_err(err)
        }
        BatchFormat::Markdown => {
            let cells: Vec<String> = columns
                .iter()
                .map(|c| markdown_cell(&cell(get(c))))
                .collect();
            writeln!(out, "| {} |", cells.join(" | ")).map_err(err)
        }
        BatchFormat::Jsonl => {
            let map: Map<String, Value> = row.iter().cloned().collect();
            writeln!(out, "{}", Value::Object(map)).map_err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_items_stream_with_their_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        std::fs::write(&path, "name,city\nAda,London\n\"Bo, Jr\",Paris\nshort\n").unwrap();
        let items = Items::open(path.to_str().unwrap()).unwrap();
        assert_eq!(items.total_hint(), Some(3));
        let rows: Vec<Value> = items.map(Result::unwrap).collect();
        assert_eq!(
            item_fields(&rows[1]),
            json!({"name": "Bo, Jr", "city": "Paris"})
        );
        assert_eq!(item_fields(&rows[2]), json!({"name": "short", "city": ""}));
        let r = row(0, &rows[0], &json!({"model": "m", "text": "t"}), None);
        let columns: Vec<&str> = r.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(columns, ["index", "name", "city", "text", "model", "error"]);
    }

    #[test]
    fn jsonl_errors_are_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        std::fs::write(&path, "{\"a\":1}\n\nnot json\n3\n").unwrap();
        let items: Vec<_> = Items::open(path.to_str().unwrap()).unwrap().collect();
        assert_eq!(items.len(), 3);
        assert!(items[1].as_ref().unwrap_err().contains("line 3"));
        assert_eq!(items[2].as_ref().unwrap(), &json!({"value": 3}));
    }

    #[test]
    fn globs_and_missing_inputs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.wav"), "x").unwrap();
        std::fs::write(dir.path().join("a.wav"), "x").unwrap();
        let items: Vec<Value> = Items::open(&format!("{}/*.wav", dir.path().display()))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(items[0]["name"], "a.wav");
        assert!(Items::open(&format!("{}/*.mp3", dir.path().display())).is_err());
        assert!(Items::open("/nonexistent/x.csv")
            .err()
            .unwrap()
            .contains("does not exist"));
    }

    #[test]
    fn results_resume_from_a_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.md");
        let cols = vec!["index".to_owned(), "text".to_owned()];
        let mut f = open_results(&path, 0).unwrap();
        write_header(&mut f, BatchFormat::Markdown, &cols).unwrap();
        let r = row(0, &json!({}), &json!({"text": "a|b\nc"}), None);
        write_row(&mut f, BatchFormat::Markdown, &cols, &r).unwrap();
        let len = f.metadata().unwrap().len();
        write_row(&mut f, BatchFormat::Markdown, &cols, &r).unwrap();
        drop(f);
        let mut f = open_results(&path, len).unwrap();
        write_row(
            &mut f,
            BatchFormat::Markdown,
            &cols,
            &row(1, &json!({}), &json!({"text": "z"}), None),
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "| index | text |\n|---|---|\n| 1 | a\\|b<br>c |\n| 2 | z |\n"
        );
    }
}
