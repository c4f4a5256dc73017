//! Documents in memory: folders and files the person adds are walked, each file read
//! (`baton_memory::docs`), cut into chunks and stored; a file that changed is read again, a
//! file that disappeared is forgotten, and one that cannot be used is recorded as skipped
//! with its reason. A watcher ([`Runtime::watch_documents`]) re-reads what changes while
//! the app or `baton serve` runs.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use baton_memory::docs::{read_document, Format};
use baton_store::{DocContent, DocFile, DocRoot, StoreError};
use serde::Serialize;

use crate::{Runtime, RuntimeError};

/// Folders not walked: version control, dependencies and build output.
const IGNORED_DIRS: &[&str] = &[
    "node_modules",
    "target",
    "__pycache__",
    "venv",
    "dist",
    "build",
];

/// What indexing a root did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IndexReport {
    /// Files read for the first time.
    pub added: usize,
    /// Files read again because they changed.
    pub updated: usize,
    /// Files unchanged since they were last read.
    pub unchanged: usize,
    /// Files forgotten because they are gone.
    pub removed: usize,
    /// Files not indexed: (path, reason).
    pub skipped: Vec<(String, String)>,
}

/// A file found by the walk.
struct Found {
    path: PathBuf,
    size: i64,
    modified_ms: i64,
}

fn modified_ms(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

fn hidden_or_ignored(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with('.') || IGNORED_DIRS.contains(&name.as_ref())
}

/// Every file under `root` (or `root` itself), hidden files and ignored folders left out;
/// folders that cannot be read are reported as skipped.
fn walk(root: &Path) -> (Vec<Found>, Vec<(String, String)>) {
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !hidden_or_ignored(e.file_name()));
    for entry in walker {
        match entry {
            Ok(e) if e.file_type().is_file() => match e.metadata() {
                Ok(meta) => found.push(Found {
                    path: e.into_path(),
                    size: meta.len() as i64,
                    modified_ms: modified_ms(&meta),
                }),
                Err(err) => skipped.push((e.path().display().to_string(), err.to_string())),
            },
            Ok(_) => {}
            Err(err) => skipped.push((
                err.path()
                    .map_or_else(|| root.display().to_string(), |p| p.display().to_string()),
                format!(
                    "cannot be read: {}",
                    err.io_error()
                        .map_or_else(|| err.to_string(), |e| e.to_string())
                ),
            )),
        }
    }
    (found, skipped)
}

impl Runtime {
    /// Adds a folder or file to memory and indexes it; `progress` hears (files done, files
    /// found) as it goes. Adding it again re-reads what changed.
    pub async fn add_documents(
        &self,
        path: &Path,
        progress: impl FnMut(usize, usize),
    ) -> Result<(DocRoot, IndexReport), RuntimeError> {
        let absolute = std::fs::canonicalize(path).map_err(|e| {
            StoreError::Invalid(format!(
                "{} cannot be added: {e}; give a folder or file that exists",
                path.display()
            ))
        })?;
        let root = self
            .store
            .add_doc_root(&absolute.display().to_string())
            .await?;
        let report = self.index_root(&root, progress).await?;
        let root = self.store.doc_root(&root.path).await?.unwrap_or(root);
        Ok((root, report))
    }

    /// Reads every file under a root that is new or changed, and forgets files that are
    /// gone. A root that is gone itself (an unplugged drive) is an error and changes nothing.
    pub async fn index_root(
        &self,
        root: &DocRoot,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<IndexReport, RuntimeError> {
        let root_path = PathBuf::from(&root.path);
        if !root_path.exists() {
            return Err(StoreError::Invalid(format!(
                "{} is gone; its documents are kept until it is back or removed with `baton docs remove {}`",
                root.path, root.id
            ))
            .into());
        }
        let walk_path = root_path.clone();
        let (found, walk_skipped) = tokio::task::spawn_blocking(move || walk(&walk_path))
            .await
            .map_err(|e| RuntimeError::Model(e.to_string()))?;
        let mut report = IndexReport {
            skipped: walk_skipped,
            ..IndexReport::default()
        };
        let total = found.len();
        let mut seen = HashSet::new();
        for (i, file) in found.into_iter().enumerate() {
            let path = file.path.display().to_string();
            seen.insert(path.clone());
            let known = self.store.document(&path).await?;
            if let Some(doc) = &known {
                if doc.size == file.size && doc.modified_ms == file.modified_ms {
                    report.unchanged += 1;
                    if let Some(reason) = &doc.reason {
                        report.skipped.push((path, reason.clone()));
                    }
                    progress(i + 1, total);
                    continue;
                }
            }
            let read = self.read_file(root.id, &file.path).await?;
            match read {
                Some(Some(reason)) => report.skipped.push((path, reason)),
                Some(None) if known.is_some() => report.updated += 1,
                Some(None) => report.added += 1,
                None => {}
            }
            progress(i + 1, total);
        }
        for doc in self.store.documents(root.id).await? {
            if !seen.contains(&doc.path) && self.store.remove_document(&doc.path).await? {
                report.removed += 1;
            }
        }
        self.memory_changed();
        Ok(report)
    }

    /// Reads one file and stores what it holds. `None` when it vanished before it could be
    /// read (then it is forgotten), `Some(Some(reason))` when it was skipped, `Some(None)`
    /// when it was indexed.
    async fn read_file(
        &self,
        root_id: i64,
        path: &Path,
    ) -> Result<Option<Option<String>>, RuntimeError> {
        let owned = path.to_path_buf();
        let (meta, read) = tokio::task::spawn_blocking(move || {
            (std::fs::metadata(&owned).ok(), read_document(&owned))
        })
        .await
        .map_err(|e| RuntimeError::Model(e.to_string()))?;
        let path_text = path.display().to_string();
        let Some(meta) = meta else {
            self.store.remove_document(&path_text).await?;
            return Ok(None);
        };
        let (format, content, reason) = match read {
            Ok(extracted) => (
                extracted.format,
                DocContent::Indexed {
                    hash: extracted.hash,
                    chars: extracted.chars as i64,
                    chunks: extracted.chunks,
                },
                None,
            ),
            Err(skip) => (
                Format::of(path),
                DocContent::Skipped(skip.0.clone()),
                Some(skip.0),
            ),
        };
        if let Some(reason) = &reason {
            tracing::info!(path = %path_text, %reason, "document skipped");
        }
        self.store
            .save_document(
                root_id,
                &DocFile {
                    path: path_text,
                    format: format.as_str().into(),
                    size: meta.len() as i64,
                    modified_ms: modified_ms(&meta),
                    content,
                },
            )
            .await?;
        Ok(Some(reason))
    }

    /// Re-reads every root (documents changed while Baton was not running). Roots that
    /// are gone are reported and left as they are.
    pub async fn index_all_documents(
        &self,
    ) -> Result<Vec<(DocRoot, Result<IndexReport, String>)>, RuntimeError> {
        let mut out = Vec::new();
        for root in self.store.doc_roots().await? {
            let result = self
                .index_root(&root, |_, _| {})
                .await
                .map_err(|e| e.to_string());
            out.push((root, result));
        }
        Ok(out)
    }

    /// Removes a root (by id or path) with its documents, chunks and vectors.
    pub async fn remove_documents(&self, id_or_path: &str) -> Result<DocRoot, RuntimeError> {
        let mut root = self.store.doc_root(id_or_path).await?;
        if root.is_none() {
            if let Ok(absolute) = std::fs::canonicalize(id_or_path) {
                root = self.store.doc_root(&absolute.display().to_string()).await?;
            }
        }
        let root = root.ok_or_else(|| {
            StoreError::Invalid(format!(
                "no documents were added as `{id_or_path}`; `baton docs list` shows what was"
            ))
        })?;
        self.store.remove_doc_root(root.id).await?;
        Ok(root)
    }

    /// Re-reads the files at `paths` (a watcher saw them change): each under a root is read
    /// again, or forgotten when gone (with everything under it, for a folder).
    pub async fn reindex_paths(&self, paths: &BTreeSet<PathBuf>) -> Result<usize, RuntimeError> {
        let roots = self.store.doc_roots().await?;
        let mut done = 0;
        for path in paths {
            let text = path.display().to_string();
            let Some(root) = roots
                .iter()
                .filter(|r| path.starts_with(&r.path))
                .max_by_key(|r| r.path.len())
            else {
                continue;
            };
            let relative = path.strip_prefix(&root.path).unwrap_or(path);
            if relative
                .components()
                .any(|c| hidden_or_ignored(c.as_os_str()))
            {
                continue;
            }
            if path.is_file() {
                let known = self.store.document(&text).await?;
                let meta = std::fs::metadata(path).ok();
                let same = known.as_ref().zip(meta.as_ref()).is_some_and(|(d, m)| {
                    d.size == m.len() as i64 && d.modified_ms == modified_ms(m)
                });
                if !same {
                    self.read_file(root.id, path).await?;
                    done += 1;
                }
            } else if !path.exists() {
                for doc in self.store.documents(root.id).await? {
                    if Path::new(&doc.path).starts_with(path)
                        && self.store.remove_document(&doc.path).await?
                    {
                        done += 1;
                    }
                }
            } else if path.is_dir() {
                // A folder appeared (moved in): walk it like a root.
                let index = self.index_root(root, |_, _| {}).await?;
                done += index.added + index.updated + index.removed;
            }
        }
        if done > 0 {
            self.memory_changed();
        }
        Ok(done)
    }

    /// Watches every root for changes and re-reads what changed, until the returned
    /// handle is dropped. Changes are gathered for `settle` after the first one, so a file
    /// written in many small steps is read once. The roots are watched when this returns.
    pub async fn watch_documents(&self, settle: Duration) -> Result<DocWatcher, RuntimeError> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event {
                    if matches!(event.kind, notify::EventKind::Access(_)) {
                        return;
                    }
                    for path in event.paths {
                        let _ = tx.send(path);
                    }
                }
            })
            .map_err(|e| RuntimeError::Model(format!("cannot watch documents: {e}")))?;
        let runtime = self.clone();
        let (roots_tx, mut roots_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut watched = HashSet::<String>::new();
        watch_new_roots(&mut watcher, &mut watched, self.store.doc_roots().await?);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    first = rx.recv() => {
                        let Some(first) = first else { break };
                        let mut paths = BTreeSet::from([first]);
                        let deadline = tokio::time::Instant::now() + settle;
                        while let Ok(Some(p)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                            paths.insert(p);
                        }
                        match runtime.reindex_paths(&paths).await {
                            Ok(n) if n > 0 => tracing::info!(files = n, "documents re-read"),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "re-reading documents failed"),
                        }
                    }
                    more = roots_rx.recv() => {
                        if more.is_none() { break }
                        if let Ok(roots) = runtime.store.doc_roots().await {
                            watch_new_roots(&mut watcher, &mut watched, roots);
                        }
                    }
                }
            }
        });
        Ok(DocWatcher {
            task,
            roots: roots_tx,
        })
    }
}

/// Starts watching the roots not watched yet.
fn watch_new_roots(
    watcher: &mut notify::RecommendedWatcher,
    watched: &mut HashSet<String>,
    roots: Vec<DocRoot>,
) {
    use notify::Watcher;
    for root in roots {
        if watched.contains(&root.path) {
            continue;
        }
        match watcher.watch(Path::new(&root.path), notify::RecursiveMode::Recursive) {
            Ok(()) => {
                watched.insert(root.path);
            }
            Err(e) => tracing::warn!(root = %root.path, error = %e, "cannot watch"),
        }
    }
}

/// A running document watcher; dropping it stops watching.
pub struct DocWatcher {
    task: tokio::task::JoinHandle<()>,
    roots: tokio::sync::mpsc::UnboundedSender<()>,
}

impl DocWatcher {
    /// Starts watching roots added since the watcher started.
    pub fn roots_changed(&self) {
        let _ = self.roots.send(());
    }
}

impl Drop for DocWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
