//! Memory in the app: Settings → Memory (the global switches, the embedding back-fill with
//! progress, the folders and files added to memory), the search over everything Baton has
//! stored (Ctrl+K and the Captures view), a session's own memory switch and its summary of
//! older turns. The runtime decides everything; these commands only translate.
//!
//! The app keeps memory current while it runs: [`start`] spawns the runtime's indexer
//! (new text is embedded as it is stored), a document watcher (changed files are read
//! again) and one pass over every added folder (files changed while the app was closed).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use baton_core::SessionId;
use baton_runtime::memory::EMBEDDING_MODEL;
use baton_runtime::{
    DocWatcher, IndexReport, MemoryHit, MemorySettings, Runtime, SearchFilter, SearchMode,
};
use baton_store::{DocRoot, Document, TurnSummary};
use serde::{Deserialize, Serialize};
use specta::Type;
use tauri::ipc::Channel;
use tauri::State;

use crate::dto::{AppError, SessionInfo};
use crate::state::AppState;

type Res<T> = Result<T, AppError>;

/// How many hits a search shows.
const SEARCH_LIMIT: u32 = 50;
/// The key under which a running back-fill's cancellation token is kept.
const BACKFILL_KEY: &str = "memory:backfill";
/// How long the document watcher gathers changes before reading them.
const WATCH_SETTLE: Duration = Duration::from_millis(500);
/// How often progress is sent to the window.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(50);

/// What keeps memory current while the app runs; dropping it stops both.
pub struct MemoryTasks {
    indexer: tokio::task::JoinHandle<()>,
    watcher: Option<DocWatcher>,
}

impl MemoryTasks {
    /// Watches the folders added since the watcher started.
    pub fn roots_changed(&self) {
        if let Some(w) = &self.watcher {
            w.roots_changed();
        }
    }
}

impl Drop for MemoryTasks {
    fn drop(&mut self) {
        self.indexer.abort();
    }
}

/// Starts the memory indexer and the document watcher (on the app's async runtime), and
/// re-reads every added folder once in the background.
pub fn start(rt: &Runtime) -> MemoryTasks {
    tauri::async_runtime::block_on(async {
        let indexer = rt.spawn_memory_indexer();
        let watcher = match rt.watch_documents(WATCH_SETTLE).await {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "documents will not be watched for changes");
                None
            }
        };
        let rt = rt.clone();
        tokio::spawn(async move {
            match rt.index_all_documents().await {
                Ok(roots) => {
                    for (root, result) in roots {
                        if let Err(e) = result {
                            tracing::warn!(root = %root.path, error = %e, "documents not re-read");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "documents not re-read at start"),
            }
        });
        MemoryTasks { indexer, watcher }
    })
}

/// Memory as Settings → Memory shows it.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStatus {
    /// Memory for sessions that do not set their own.
    pub enabled: bool,
    /// Whether snippets may be sent to remote engines.
    pub remote: bool,
    /// The embedding model's registry name.
    pub model: String,
    /// Whether it is installed (without it, memory is searched by words only).
    pub model_installed: bool,
    /// Texts with a vector of that model.
    pub embedded: f64,
    /// Texts in all (messages, captures, document chunks, task outputs).
    pub total: f64,
    /// Whether a back-fill started in this window is running.
    pub backfilling: bool,
}

/// Progress of a long memory job: `done` of `total` (texts embedded, files read).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct MemoryProgress {
    /// Done so far.
    pub done: f64,
    /// In all.
    pub total: f64,
}

/// How a back-fill ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct BackfillReport {
    /// Texts embedded.
    pub embedded: f64,
    /// Whether it was cancelled (what was embedded stays).
    pub cancelled: bool,
}

/// A search hit over everything stored.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct MemoryHitInfo {
    /// `message`, `capture`, `chunk` (of a document) or `task` (an output).
    pub kind: String,
    /// Its row id (the message's or the capture's id).
    pub ref_id: f64,
    /// The session's title, the capture's source, the document's file name or the task.
    pub title: String,
    /// The session (messages).
    pub session_id: Option<String>,
    /// The document's path, the task's id or the capture's id.
    pub location: Option<String>,
    /// A passage; words that matched are wrapped in `[` and `]`.
    pub text: String,
    /// RFC 3339 time it was stored.
    pub created_at: String,
    /// The fused score (higher is better).
    pub score: f64,
    /// Cosine similarity to the query, when it matched by meaning.
    pub similarity: Option<f64>,
    /// Why it matched: `words (#1): …` and/or `meaning (#2): 63% similar`.
    pub why: Vec<String>,
    /// A document's whole chunk (for documents only: other texts can be long, and they
    /// open where they live).
    pub chunk_text: Option<String>,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}

impl From<MemoryHit> for MemoryHitInfo {
    fn from(h: MemoryHit) -> Self {
        Self {
            chunk_text: (h.kind == "chunk").then_some(h.full_text),
            kind: h.kind,
            ref_id: h.ref_id as f64,
            title: h.title,
            session_id: h.session_id,
            location: h.location,
            text: h.text,
            created_at: rfc3339(h.created_at),
            score: h.score,
            similarity: h.similarity,
            why: h.why,
        }
    }
}

/// A folder or file added to memory, with what was found under it.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct DocRootInfo {
    /// Its id.
    pub id: f64,
    /// The absolute path.
    pub path: String,
    /// RFC 3339 time it was added.
    pub added_at: String,
    /// Files indexed.
    pub indexed: f64,
    /// Files skipped (each with its reason).
    pub skipped: f64,
    /// Chunks in all.
    pub chunks: f64,
    /// Bytes on disk of the indexed files.
    pub bytes: f64,
}

impl From<DocRoot> for DocRootInfo {
    fn from(r: DocRoot) -> Self {
        Self {
            id: r.id as f64,
            added_at: rfc3339(r.added_at),
            path: r.path,
            indexed: r.indexed as f64,
            skipped: r.skipped as f64,
            chunks: r.chunks as f64,
            bytes: r.bytes as f64,
        }
    }
}

/// One file under a folder added to memory.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct DocumentInfo {
    /// Its id.
    pub id: f64,
    /// The absolute path.
    pub path: String,
    /// `text`, `markdown`, `pdf`, `code` or `other`.
    pub format: String,
    /// Bytes on disk when last read.
    pub size: f64,
    /// `indexed` or `skipped`.
    pub state: String,
    /// Why it was skipped.
    pub reason: Option<String>,
    /// Chunks stored.
    pub chunks: f64,
    /// Characters of text extracted.
    pub chars: f64,
    /// RFC 3339 time it was last read.
    pub indexed_at: String,
}

impl From<Document> for DocumentInfo {
    fn from(d: Document) -> Self {
        Self {
            id: d.id as f64,
            path: d.path,
            format: d.format,
            size: d.size as f64,
            state: d.state,
            reason: d.reason,
            chunks: d.chunks as f64,
            chars: d.chars as f64,
            indexed_at: rfc3339(d.indexed_at),
        }
    }
}

/// A file that was not indexed, and why.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct SkippedFile {
    /// Its path.
    pub path: String,
    /// Why (binary, empty, too large, unreadable).
    pub reason: String,
}

/// What adding or re-reading a folder did, with the folder as it is now.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct IndexResult {
    /// The folder or file.
    pub root: DocRootInfo,
    /// Files read for the first time.
    pub added: f64,
    /// Files read again because they changed.
    pub updated: f64,
    /// Files unchanged since they were last read.
    pub unchanged: f64,
    /// Files forgotten because they are gone.
    pub removed: f64,
    /// Files not indexed.
    pub skipped: Vec<SkippedFile>,
}

impl IndexResult {
    fn new(root: DocRoot, report: IndexReport) -> Self {
        Self {
            root: root.into(),
            added: report.added as f64,
            updated: report.updated as f64,
            unchanged: report.unchanged as f64,
            removed: report.removed as f64,
            skipped: report
                .skipped
                .into_iter()
                .map(|(path, reason)| SkippedFile { path, reason })
                .collect(),
        }
    }
}

/// A model's summary of a session's older turns, used in their place.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct TurnSummaryInfo {
    /// The last message it covers (it stands for every message up to this id).
    pub through_id: f64,
    /// The summary.
    pub content: String,
    /// The model that wrote it.
    pub model: String,
    /// RFC 3339 time it was written.
    pub created_at: String,
}

impl From<TurnSummary> for TurnSummaryInfo {
    fn from(s: TurnSummary) -> Self {
        Self {
            through_id: s.through_id as f64,
            content: s.content,
            model: s.model,
            created_at: rfc3339(s.created_at),
        }
    }
}

/// Sends progress to the window at most every [`PROGRESS_INTERVAL`] (and at the end).
fn reporter(channel: &Channel<MemoryProgress>) -> impl FnMut(f64, f64) + '_ {
    let mut last: Option<Instant> = None;
    move |done, total| {
        if last.is_none_or(|t| t.elapsed() >= PROGRESS_INTERVAL) || done >= total {
            last = Some(Instant::now());
            if let Err(e) = channel.send(MemoryProgress { done, total }) {
                tracing::debug!(error = %e, "the window stopped listening to progress");
            }
        }
    }
}

/// A path as typed: surrounding spaces and quotes dropped, `~` for the home folder.
fn typed_path(path: &str) -> PathBuf {
    let path = path.trim().trim_matches(|c| c == '"' || c == '\'');
    if let Some(home) = std::env::var_os("HOME") {
        if path == "~" {
            return PathBuf::from(home);
        }
        if let Some(rest) = path.strip_prefix("~/") {
            return PathBuf::from(home).join(rest);
        }
    }
    PathBuf::from(path)
}

/// Memory's switches and how far embedding has got.
#[tauri::command]
#[specta::specta]
pub async fn memory_status(state: State<'_, AppState>) -> Res<MemoryStatus> {
    let rt = state.runtime()?;
    let settings = rt.memory_settings().await?;
    let counts = rt.store().embedding_counts(EMBEDDING_MODEL).await?;
    Ok(MemoryStatus {
        enabled: settings.enabled,
        remote: settings.remote,
        model: EMBEDDING_MODEL.into(),
        model_installed: rt.store().model(EMBEDDING_MODEL).await?.is_some(),
        embedded: counts.embedded as f64,
        total: counts.total as f64,
        backfilling: state.running(BACKFILL_KEY),
    })
}

/// Turns memory on or off for sessions that do not set their own, and allows or forbids
/// sending snippets to remote engines.
#[tauri::command]
#[specta::specta]
pub async fn set_memory_settings(
    state: State<'_, AppState>,
    enabled: bool,
    remote: bool,
) -> Res<MemoryStatus> {
    let rt = state.runtime()?;
    rt.set_memory_settings(MemorySettings { enabled, remote })
        .await?;
    memory_status(state).await
}

/// Gives every stored text without a vector one, reporting (embedded, total) through
/// `on_progress`. Cancellable; what was embedded stays.
#[tauri::command]
#[specta::specta]
pub async fn backfill_memory(
    state: State<'_, AppState>,
    on_progress: Channel<MemoryProgress>,
) -> Res<BackfillReport> {
    let rt = state.runtime()?;
    let cancel = state.begin(BACKFILL_KEY).map_err(|_| {
        AppError::new(
            "busy",
            "the back-fill is already running; wait for it or cancel it",
        )
    })?;
    let mut report = reporter(&on_progress);
    let result = tokio::select! {
        r = rt.embed_pending(|done, total| report(done as f64, total as f64)) => r.map(Some),
        () = cancel.cancelled() => Ok(None),
    };
    state.finish(BACKFILL_KEY);
    Ok(match result? {
        Some(n) => BackfillReport {
            embedded: n as f64,
            cancelled: false,
        },
        None => BackfillReport {
            embedded: 0.0,
            cancelled: true,
        },
    })
}

/// Cancels a running back-fill; false when none runs.
#[tauri::command]
#[specta::specta]
pub fn cancel_backfill(state: State<'_, AppState>) -> bool {
    state.cancel(BACKFILL_KEY)
}

/// Searches everything stored (conversations, captures, documents, task outputs) by words
/// and meaning; `kind` narrows it to one of `message`, `capture`, `chunk`, `task`.
#[tauri::command]
#[specta::specta]
pub async fn search_memory(
    state: State<'_, AppState>,
    query: String,
    kind: Option<String>,
) -> Res<Vec<MemoryHitInfo>> {
    let rt = state.runtime()?;
    if query.trim().is_empty() {
        return Ok(Vec::new());
    }
    let filter = SearchFilter {
        kind: kind.filter(|k| !k.is_empty()),
        ..SearchFilter::default()
    };
    let hits = rt
        .search_memory(&query, SearchMode::Hybrid, &filter, SEARCH_LIMIT)
        .await?;
    Ok(hits.into_iter().map(Into::into).collect())
}

/// The folders and files added to memory, oldest first.
#[tauri::command]
#[specta::specta]
pub async fn doc_roots(state: State<'_, AppState>) -> Res<Vec<DocRootInfo>> {
    let rt = state.runtime()?;
    Ok(rt
        .store()
        .doc_roots()
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// The files found under a folder added to memory, indexed and skipped, by path.
#[tauri::command]
#[specta::specta]
pub async fn root_documents(state: State<'_, AppState>, root_id: f64) -> Res<Vec<DocumentInfo>> {
    let rt = state.runtime()?;
    Ok(rt
        .store()
        .documents(root_id as i64)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// Adds a folder or file to memory and reads it, reporting (files read, files found)
/// through `on_progress`; then it is watched for changes.
#[tauri::command]
#[specta::specta]
pub async fn add_documents(
    state: State<'_, AppState>,
    path: String,
    on_progress: Channel<MemoryProgress>,
) -> Res<IndexResult> {
    let rt = state.runtime()?;
    if path.trim().is_empty() {
        return Err(AppError::new(
            "invalid",
            "give the path of a folder or file to add",
        ));
    }
    let mut report = reporter(&on_progress);
    let (root, index) = rt
        .add_documents(&typed_path(&path), |done, total| {
            report(done as f64, total as f64)
        })
        .await?;
    state.memory_roots_changed();
    Ok(IndexResult::new(root, index))
}

/// Reads a folder added to memory again (what changed, what is new, what is gone).
#[tauri::command]
#[specta::specta]
pub async fn reindex_documents(
    state: State<'_, AppState>,
    root_id: f64,
    on_progress: Channel<MemoryProgress>,
) -> Res<IndexResult> {
    let rt = state.runtime()?;
    let id = (root_id as i64).to_string();
    let root = rt.store().doc_root(&id).await?.ok_or_else(|| {
        AppError::new(
            "notFound",
            "that folder is no longer in memory; add it again",
        )
    })?;
    let mut report = reporter(&on_progress);
    let index = rt
        .index_root(&root, |done, total| report(done as f64, total as f64))
        .await?;
    let root = rt.store().doc_root(&id).await?.unwrap_or(root);
    Ok(IndexResult::new(root, index))
}

/// Removes a folder or file from memory with its chunks (the files stay on disk).
#[tauri::command]
#[specta::specta]
pub async fn remove_documents(state: State<'_, AppState>, root_id: f64) -> Res<DocRootInfo> {
    let rt = state.runtime()?;
    let id = (root_id as i64).to_string();
    Ok(rt.remove_documents(&id).await?.into())
}

/// Turns memory on or off for one session; `None` follows Settings.
#[tauri::command]
#[specta::specta]
pub async fn set_session_memory(
    state: State<'_, AppState>,
    session_id: String,
    memory: Option<bool>,
) -> Res<SessionInfo> {
    let rt = state.runtime()?;
    Ok(rt
        .store()
        .set_session_memory(&SessionId(session_id), memory)
        .await?
        .into())
}

/// The model's summary of a session's older turns, when the conversation outgrew the
/// context window.
#[tauri::command]
#[specta::specta]
pub async fn session_summary(
    state: State<'_, AppState>,
    session_id: String,
) -> Res<Option<TurnSummaryInfo>> {
    let rt = state.runtime()?;
    Ok(rt
        .store()
        .session_summary(&SessionId(session_id))
        .await?
        .map(Into::into))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_paths_lose_quotes_and_expand_the_home_folder() {
        let home = PathBuf::from(std::env::var_os("HOME").unwrap());
        assert_eq!(typed_path("  '/tmp/notes' "), PathBuf::from("/tmp/notes"));
        assert_eq!(typed_path("~/notes"), home.join("notes"));
        assert_eq!(typed_path("~"), home);
        assert_eq!(typed_path("notes/~x"), PathBuf::from("notes/~x"));
    }

    #[test]
    fn hits_carry_their_time_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00+00:00");
    }
}
