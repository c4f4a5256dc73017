//! The audit log of the API: every request, refused ones included, becomes one
//! `api_audit` row (`baton audit` prints them). Rows go through a bounded channel to one
//! writer task that stores them in batches once a second, between requests (see
//! [`FLUSH_EVERY`]), so recording does not slow answers; a row that cannot be written is
//! logged, never turned into a failed request.
//!
//! A row is sent when the answer's body ends (or the client leaves), so its duration
//! covers a whole streamed answer.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use baton_store::{NewApiCall, Store};
use http_body::{Frame, SizeHint};

/// Rows waiting for the writer at most; beyond, new rows are dropped (and counted).
const QUEUE: usize = 8192;
/// Rows stored in one transaction at most.
const BATCH: usize = 512;
/// How often queued rows are written.
///
/// The log's commits are kept few and out of the way of request handlers: once a second,
/// and only while no request is being handled (requests that arrive meanwhile wait for the
/// commit, milliseconds), or after [`IDLE_WAIT`] under constant load. A deferred
/// transaction of another connection that reads before a commit and writes after it fails
/// with SQLITE_BUSY_SNAPSHOT (the task queue's state changes are such transactions), which
/// a client would see as a 500.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for a moment without requests before queued rows are written anyway.
const IDLE_WAIT: Duration = Duration::from_secs(5);
/// Longest time requests wait for a commit (one held up by another writer's lock goes on
/// without holding them).
const GATE_HOLD: Duration = Duration::from_millis(250);
/// Longest prompt text kept (characters), when prompts are kept at all.
const MAX_PROMPT_CHARS: usize = 100_000;

/// What a handler learns about a request that the audit row should hold.
#[derive(Debug, Default)]
pub(crate) struct AuditNote {
    fields: Mutex<NoteFields>,
}

#[derive(Debug, Default)]
struct NoteFields {
    model: Option<String>,
    prompt: Option<String>,
}

impl AuditNote {
    /// The model the request named or that answers it.
    pub(crate) fn model(&self, model: impl Into<String>) {
        if let Ok(mut f) = self.fields.lock() {
            f.model = Some(model.into());
        }
    }

    /// The prompt's text; the caller passes it only when prompts are kept.
    pub(crate) fn prompt(&self, text: String) {
        let text = match text.char_indices().nth(MAX_PROMPT_CHARS) {
            Some((cut, _)) => format!("{}… [cut at {MAX_PROMPT_CHARS} characters]", &text[..cut]),
            None => text,
        };
        if let Ok(mut f) = self.fields.lock() {
            f.prompt = Some(text);
        }
    }

    fn take(&self) -> (Option<String>, Option<String>) {
        match self.fields.lock() {
            Ok(mut f) => (f.model.take(), f.prompt.take()),
            Err(_) => (None, None),
        }
    }
}

/// Keeps the writer's commits and request handlers apart: handlers share the gate, the
/// writer commits only when it can hold it alone (see [`FLUSH_EVERY`] for why).
#[derive(Default)]
struct Gate {
    lock: Arc<tokio::sync::RwLock<()>>,
    handling: AtomicUsize,
    idle: tokio::sync::Notify,
}

impl Gate {
    /// The gate held alone, once no request is being handled; `None` after `limit`.
    async fn alone(&self, limit: Duration) -> Option<tokio::sync::OwnedRwLockWriteGuard<()>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Created before trying, so a request ending in between still wakes it.
            let ended = self.idle.notified();
            if let Ok(guard) = self.lock.clone().try_write_owned() {
                return Some(guard);
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return None;
            }
        }
    }
}

/// Counts one request as being handled, until dropped.
struct Counted(Arc<Gate>);

impl Counted {
    fn new(gate: Arc<Gate>) -> Self {
        gate.handling.fetch_add(1, Ordering::SeqCst);
        Self(gate)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if self.0.handling.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Marks one request as being handled, until dropped. (Fields drop in order: the gate is
/// released before the writer is told the server is idle.)
pub(crate) struct Handling {
    _shared: tokio::sync::OwnedRwLockReadGuard<()>,
    _counted: Counted,
}

/// Sends rows to the writer without waiting.
#[derive(Clone)]
pub(crate) struct AuditSink {
    tx: tokio::sync::mpsc::Sender<NewApiCall>,
    dropped: Arc<AtomicU64>,
    gate: Arc<Gate>,
}

impl AuditSink {
    /// Marks a request as being handled (its checks and its handler, not the streaming of
    /// its answer) until the returned guard is dropped. Waits only while the writer commits.
    pub(crate) async fn handling(&self) -> Handling {
        let counted = Counted::new(self.gate.clone());
        let shared = self.gate.lock.clone().read_owned().await;
        Handling {
            _shared: shared,
            _counted: counted,
        }
    }

    fn send(&self, call: NewApiCall) {
        match self.tx.try_send(call) {
            Ok(()) => {}
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The writer is gone: the server is stopping.
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Starts the writer: rows sent to the returned sink are stored in `store`. Rows older
/// than `keep` (when given) are deleted at start and once a day. The task ends when every
/// sink is dropped and the queue is written.
pub(crate) fn start(
    store: Store,
    keep: Option<Duration>,
) -> (AuditSink, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(Gate::default());
    let sink = AuditSink {
        tx,
        dropped: dropped.clone(),
        gate: gate.clone(),
    };
    let task = tokio::spawn(async move {
        let mut pruned_at: Option<Instant> = None;
        let mut batch = Vec::with_capacity(BATCH);
        let mut every = tokio::time::interval(FLUSH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut open = true;
        while open {
            tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => {
                    open = n > 0;
                    if open && batch.len() < BATCH {
                        continue;
                    }
                }
                _ = every.tick() => {}
            }
            let prune_due = keep.is_some()
                && pruned_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(86_400));
            if batch.is_empty() && !prune_due {
                continue;
            }
            // Held until the rows are committed; under constant load for IDLE_WAIT, they
            // are committed without it.
            let mut alone = if open {
                gate.alone(IDLE_WAIT).await
            } else {
                None
            };
            {
                let work = async {
                    if let Some(keep) = keep.filter(|_| prune_due) {
                        prune(&store, keep).await;
                    }
                    if !batch.is_empty() {
                        if let Err(e) = store.record_api_calls(&batch).await {
                            tracing::warn!(error = %e, rows = batch.len(), "could not write the API audit log; the requests were answered");
                        }
                    }
                };
                tokio::pin!(work);
                // A commit that waits for another writer's lock does not hold requests up long.
                tokio::select! {
                    () = &mut work => {}
                    () = tokio::time::sleep(GATE_HOLD) => {
                        alone.take();
                        work.await;
                    }
                }
            }
            drop(alone);
            if prune_due {
                pruned_at = Some(Instant::now());
            }
            batch.clear();
            let lost = dropped.swap(0, Ordering::Relaxed);
            if lost > 0 {
                tracing::warn!(
                    rows = lost,
                    "API audit rows were dropped: requests came faster than the database could record them"
                );
            }
        }
    });
    (sink, task)
}

async fn prune(store: &Store, keep: Duration) {
    let Ok(keep) = chrono::Duration::from_std(keep) else {
        return;
    };
    let before = chrono::Utc::now() - keep;
    match store.prune_api_calls(before).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(rows = n, "deleted old API audit rows ([api] audit_days)"),
        Err(e) => tracing::warn!(error = %e, "could not delete old API audit rows"),
    }
}

/// A row in the making: what was known when the request arrived and was answered.
pub(crate) struct Pending {
    pub(crate) sink: AuditSink,
    pub(crate) started: Instant,
    pub(crate) at: chrono::DateTime<chrono::Utc>,
    pub(crate) client: String,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) status: u16,
    /// Set for refusals (`unauthorized`, …); else derived from the status.
    pub(crate) outcome: Option<&'static str>,
    pub(crate) note: Arc<AuditNote>,
}

impl Pending {
    /// Sends the row; `ended` says whether the answer's body was sent to its end.
    fn send(self, ended: bool) {
        let outcome = match self.outcome {
            Some(o) => o,
            None if !ended => "disconnected",
            None => match self.status {
                200..=399 => "ok",
                401 => "unauthorized",
                429 => "rate_limited",
                400..=499 => "refused",
                _ => "failed",
            },
        };
        let (model, prompt) = self.note.take();
        let duration_ms = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.sink.send(NewApiCall {
            at: self.at,
            client: self.client,
            method: self.method,
            path: self.path,
            status: self.status,
            outcome: outcome.to_owned(),
            duration_ms,
            model,
            prompt,
        });
    }
}

/// A response body that sends its audit row when it ends or is dropped.
pub(crate) struct AuditBody {
    inner: Body,
    pending: Option<Pending>,
}

impl AuditBody {
    /// Wraps `inner`; `pending` is sent when it ends.
    pub(crate) fn new(inner: Body, pending: Pending) -> Self {
        Self {
            inner,
            pending: Some(pending),
        }
    }

    fn finish(&mut self, ended: bool) {
        if let Some(p) = self.pending.take() {
            p.send(ended);
        }
    }
}

impl HttpBody for AuditBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.finish(true),
            Poll::Ready(Some(Err(_))) => self.finish(false),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AuditBody {
    fn drop(&mut self) {
        // A body whose last frame was taken may be dropped without being polled for its end.
        let ended = self.inner.is_end_stream();
        self.finish(ended);
    }
}
