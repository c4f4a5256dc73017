//! Memory in the runtime: the embedding model (loaded on first use from the registry),
//! the back-fill that gives every stored text its vector, and search by words, by meaning,
//! or both fused (`baton_core::memory::score_fusion`), each hit saying why it matched.

use std::sync::Arc;

use baton_core::memory::score_fusion;
use baton_memory::Embedder;
use serde::Serialize;

use crate::{Runtime, RuntimeError};

/// The embedding model Baton uses (`baton models fetch all-minilm-l6-v2`).
pub const EMBEDDING_MODEL: &str = "all-minilm-l6-v2";
/// Its tokenizer, installed beside it.
const TOKENIZER_FILE: &str = "all-MiniLM-L6-v2.tokenizer.json";
/// Texts embedded per batch by the back-fill.
pub const EMBED_BATCH: usize = 32;
/// Candidates each ranking contributes before fusion.
const CANDIDATES: u32 = 50;
/// The share of meaning in a hybrid score (the rest is words). Measured with `baton bench
/// memory` (50 notes asked for in other words, 3,000 stored messages): hit@1 was 38% at
/// 0.5, 62% at 0.7, 82% at 0.8 and 92% at 0.9, where reciprocal rank fusion reached 76%;
/// ten exact-word queries (codes, names) were found first at every share.
pub const MEANING_SHARE: f64 = 0.9;
/// Below this cosine similarity a text is not about the query (all-MiniLM-L6-v2 puts
/// unrelated sentences between about -0.1 and 0.2).
pub const MIN_SIMILARITY: f64 = 0.25;

/// How to search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// Words and meaning, fused.
    Hybrid,
    /// Only the words (FTS5, any word, bm25).
    Words,
    /// Only the meaning (nearest vectors).
    Meaning,
}

/// What to search among.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SearchFilter {
    /// One kind only: `message`, `capture`, `chunk` (documents) or `task`.
    pub kind: Option<String>,
    /// One session only (its messages).
    pub session: Option<String>,
    /// Leave out this session (a conversation does not need its own turns from memory).
    pub not_session: Option<String>,
    /// Stored at or after this time, ms since the epoch.
    pub since_ms: Option<i64>,
    /// Stored before this time, ms since the epoch.
    pub until_ms: Option<i64>,
}

impl SearchFilter {
    fn narrows_beyond_kind(&self) -> bool {
        self.session.is_some()
            || self.not_session.is_some()
            || self.since_ms.is_some()
            || self.until_ms.is_some()
    }

    fn admits(&self, item: &baton_store::MemoryItem) -> bool {
        let session = item.session_id.as_deref();
        self.session.as_deref().is_none_or(|s| session == Some(s))
            && self
                .not_session
                .as_deref()
                .is_none_or(|s| session != Some(s))
            && self.since_ms.is_none_or(|t| item.created_at >= t)
            && self.until_ms.is_none_or(|t| item.created_at < t)
    }
}

/// One search result.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryHit {
    /// `message`, `capture`, `chunk` (of a document) or `task` (an output).
    pub kind: String,
    /// Its row id.
    pub ref_id: i64,
    /// The session's title, the capture's source, the document's file name or the task.
    pub title: String,
    /// The session (messages).
    pub session_id: Option<String>,
    /// The document's path, the task's id or the capture's id.
    pub location: Option<String>,
    /// Who wrote it (messages): `user` or `assistant`.
    pub role: Option<String>,
    /// The text (a passage of it).
    pub text: String,
    /// When it was stored, ms since the epoch.
    pub created_at: i64,
    /// The fused score (higher is better).
    pub score: f64,
    /// Cosine similarity to the query, when it matched by meaning.
    pub similarity: Option<f64>,
    /// Why it matched: its words (with the passage) and/or its meaning (with similarity).
    pub why: Vec<String>,
    /// The whole text (for the model's context; not sent to front ends).
    #[serde(skip)]
    pub full_text: String,
}

impl Runtime {
    /// The embedding model, loaded once.
    pub async fn embedder(&self) -> Result<Arc<Embedder>, RuntimeError> {
        self.embedder
            .get_or_try_init(|| async {
                let record = self.store.model(EMBEDDING_MODEL).await?.ok_or_else(|| {
                    RuntimeError::Model(format!(
                        "the embedding model is not installed; fetch it with `baton models fetch {EMBEDDING_MODEL}`"
                    ))
                })?;
                let model = std::path::PathBuf::from(&record.path);
                let tokenizer = model.with_file_name(TOKENIZER_FILE);
                let embedder = tokio::task::spawn_blocking(move || {
                    Embedder::load(EMBEDDING_MODEL, &model, &tokenizer, 1)
                })
                .await
                .map_err(|e| RuntimeError::Model(e.to_string()))?
                .map_err(|e| RuntimeError::Model(e.to_string()))?;
                Ok(Arc::new(embedder))
            })
            .await
            .cloned()
    }

    /// Embeds texts (on a blocking thread, [`EMBED_BATCH`] at a time).
    pub async fn embed_texts(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, RuntimeError> {
        Ok(self.embed_counted(texts).await?.0)
    }

    /// Embeds texts and counts the tokens the model read.
    pub async fn embed_counted(
        &self,
        texts: Vec<String>,
    ) -> Result<(Vec<Vec<f32>>, usize), RuntimeError> {
        let embedder = self.embedder().await?;
        tokio::task::spawn_blocking(move || {
            let mut vectors = Vec::with_capacity(texts.len());
            let mut tokens = 0;
            for batch in texts.chunks(EMBED_BATCH) {
                let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
                vectors.extend(embedder.embed(&refs)?);
                tokens += embedder.token_counts(&refs)?.iter().sum::<usize>();
            }
            Ok::<_, baton_memory::MemoryError>((vectors, tokens))
        })
        .await
        .map_err(|e| RuntimeError::Model(e.to_string()))?
        .map_err(|e| RuntimeError::Model(e.to_string()))
    }

    /// Gives every stored text without a vector one, a batch at a time; `progress` hears
    /// (done, total) after each batch. Vectors of an earlier embedding model are dropped
    /// first. Safe to stop at any point: what was committed stays, the rest is done next
    /// time. Returns how many texts were embedded.
    pub async fn embed_pending(
        &self,
        mut progress: impl FnMut(i64, i64),
    ) -> Result<usize, RuntimeError> {
        let model = self.embedder().await?.name().to_owned();
        self.store.drop_other_embeddings(&model).await?;
        // Counted once: counting again after each batch scans every text each time.
        let start = self.store.embedding_counts(&model).await?;
        let mut done = 0;
        loop {
            let Some(saved) = self.embed_batch(&model, EMBED_BATCH as u32).await? else {
                break;
            };
            if saved == 0 {
                // Every text changed under us; the next round takes their new words.
                tokio::task::yield_now().await;
            }
            done += saved;
            let embedded = start.embedded + done as i64;
            progress(embedded, start.total.max(embedded));
        }
        Ok(done)
    }

    /// Embeds up to `at_most` texts that have no vector yet. Returns how many were stored.
    pub async fn embed_some(&self, at_most: u32) -> Result<usize, RuntimeError> {
        let model = self.embedder().await?.name().to_owned();
        Ok(self.embed_batch(&model, at_most).await?.unwrap_or(0))
    }

    /// Embeds one batch of up to `at_most` texts without a vector of `model` and stores
    /// what is still current. `None` when nothing was pending, else how many were stored.
    async fn embed_batch(&self, model: &str, at_most: u32) -> Result<Option<usize>, RuntimeError> {
        let batch = self.store.pending_embeddings(model, at_most).await?;
        if batch.is_empty() {
            return Ok(None);
        }
        let texts: Vec<String> = batch.iter().map(|p| p.text.clone()).collect();
        let vectors = self.embed_texts(texts).await?;
        let items: Vec<_> = batch.into_iter().zip(vectors).collect();
        Ok(Some(self.store.save_embeddings(model, &items).await?))
    }

    /// Searches what Baton has stored (messages, captures, documents, task outputs) for
    /// `query`. In hybrid mode without the embedding model installed, only words are used.
    pub async fn search_memory(
        &self,
        query: &str,
        mode: SearchMode,
        filter: &SearchFilter,
        limit: u32,
    ) -> Result<Vec<MemoryHit>, RuntimeError> {
        let mode =
            if mode == SearchMode::Hybrid && self.store.model(EMBEDDING_MODEL).await?.is_none() {
                SearchMode::Words
            } else {
                mode
            };
        let kind = filter.kind.as_deref();
        // Filters other than the kind are applied to the candidates: take more of them.
        let candidates = if filter.narrows_beyond_kind() {
            CANDIDATES * 10
        } else {
            CANDIDATES
        };
        let words = if mode == SearchMode::Meaning {
            Vec::new()
        } else {
            self.store.words_ranked(query, kind, candidates).await?
        };
        let meaning = if mode == SearchMode::Words {
            Vec::new()
        } else {
            let embedder = self.embedder().await?;
            let vector = self
                .embed_texts(vec![query.to_owned()])
                .await?
                .pop()
                .unwrap_or_default();
            let mut near = self
                .store
                .nearest(embedder.name(), &vector, kind, candidates)
                .await?;
            near.retain(|m| 1.0 - m.distance >= MIN_SIMILARITY);
            near
        };
        let key = |kind: &str, id: i64| (kind.to_owned(), id);
        let fused = score_fusion(
            &meaning
                .iter()
                .map(|m| (key(&m.kind, m.ref_id), 1.0 - m.distance))
                .collect::<Vec<_>>(),
            // FTS5's bm25 is negative, lower better.
            &words
                .iter()
                .map(|w| (key(&w.kind, w.ref_id), -w.rank))
                .collect::<Vec<_>>(),
            MEANING_SHARE,
        );
        let wanted = if filter.narrows_beyond_kind() {
            fused.len()
        } else {
            limit as usize
        };
        let keys: Vec<(String, i64)> = fused.iter().take(wanted).map(|(k, _)| k.clone()).collect();
        let items = self.store.memory_items(&keys).await?;
        let mut out = Vec::with_capacity(limit as usize);
        for item in items {
            if out.len() >= limit as usize {
                break;
            }
            if !filter.admits(&item) {
                continue;
            }
            let k = (item.kind.clone(), item.ref_id);
            let score = fused
                .iter()
                .find(|(key, _)| key == &k)
                .map_or(0.0, |(_, s)| *s);
            let mut similarity = None;
            let mut why = Vec::new();
            let mut text = item.text.clone();
            let full_text = item.text.clone();
            if let Some((rank, w)) = words
                .iter()
                .enumerate()
                .find(|(_, w)| w.kind == k.0 && w.ref_id == k.1)
            {
                why.push(format!("words (#{}): {}", rank + 1, w.snippet));
                text = w.snippet.clone();
            }
            if let Some((rank, m)) = meaning
                .iter()
                .enumerate()
                .find(|(_, m)| m.kind == k.0 && m.ref_id == k.1)
            {
                similarity = Some(1.0 - m.distance);
                why.push(format!(
                    "meaning (#{}): {:.0}% similar",
                    rank + 1,
                    (1.0 - m.distance).clamp(0.0, 1.0) * 100.0
                ));
            }
            out.push(MemoryHit {
                kind: item.kind,
                ref_id: item.ref_id,
                title: item.title,
                session_id: item.session_id,
                location: item.location,
                role: item.role,
                text: passage(&text, 240),
                created_at: item.created_at,
                score,
                similarity,
                why,
                full_text,
            });
        }
        Ok(out)
    }
}

/// The first `max` characters of `text` on one line.
fn passage(text: &str, max: usize) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        return line;
    }
    let mut cut: String = line.chars().take(max).collect();
    cut.push('…');
    cut
}

/// The first line of the system message that carries memory snippets to the model; an
/// engine that may not see memory gets the request without it.
pub(crate) const MEMORY_HEADER: &str = "Notes from the person's memory";

/// Memory switches as they stand: the config's values with the person's choices (the
/// app's Settings, `baton memory on|off|remote`) laid over them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MemorySettings {
    /// Memory for sessions that do not set their own.
    pub enabled: bool,
    /// Whether snippets may be sent to remote engines.
    pub remote: bool,
}

const SETTING_ENABLED: &str = "memory.enabled";
const SETTING_REMOTE: &str = "memory.remote";

impl Runtime {
    /// Memory's global switches.
    pub async fn memory_settings(&self) -> Result<MemorySettings, RuntimeError> {
        let flag = |v: Option<serde_json::Value>, default: bool| {
            v.and_then(|v| v.as_bool()).unwrap_or(default)
        };
        Ok(MemorySettings {
            enabled: flag(
                self.store.setting(SETTING_ENABLED).await?,
                self.config.memory.enabled,
            ),
            remote: flag(
                self.store.setting(SETTING_REMOTE).await?,
                self.config.memory.remote,
            ),
        })
    }

    /// Changes memory's global switches.
    pub async fn set_memory_settings(&self, settings: MemorySettings) -> Result<(), RuntimeError> {
        self.store
            .set_setting(SETTING_ENABLED, &serde_json::Value::Bool(settings.enabled))
            .await?;
        self.store
            .set_setting(SETTING_REMOTE, &serde_json::Value::Bool(settings.remote))
            .await?;
        Ok(())
    }

    /// Says that new text was stored: the memory indexer (when running) embeds it.
    pub fn memory_changed(&self) {
        self.memory_wakeup.notify_one();
    }

    /// Embeds new text in the background as it is stored, until the handle is aborted.
    /// Without the embedding model installed it waits (text is still found by its words).
    pub fn spawn_memory_indexer(&self) -> tokio::task::JoinHandle<()> {
        let runtime = self.clone();
        tokio::spawn(async move {
            loop {
                let installed = matches!(runtime.store.model(EMBEDDING_MODEL).await, Ok(Some(_)));
                if installed {
                    match runtime.embed_pending(|_, _| {}).await {
                        Ok(0) => {}
                        Ok(n) => tracing::debug!(texts = n, "embedded"),
                        Err(e) => tracing::warn!(error = %e, "embedding new text failed"),
                    }
                }
                runtime.memory_wakeup.notified().await;
            }
        })
    }

    /// Whether memory feeds this session's answers.
    pub async fn session_memory_on(
        &self,
        session: &baton_store::Session,
    ) -> Result<bool, RuntimeError> {
        Ok(match session.memory {
            Some(on) => on,
            None => self.memory_settings().await?.enabled,
        })
    }

    /// The snippets memory offers for `question` in `session`: the best hits from other
    /// sessions, captures, documents and task outputs that are about it (similar in
    /// meaning, or, without the embedding model, sharing its words), numbered, within the
    /// configured count and token budget.
    pub(crate) async fn recall(
        &self,
        session: &baton_store::Session,
        question: &str,
    ) -> Result<Vec<baton_store::MessageSource>, RuntimeError> {
        let limits = &self.config.memory;
        if limits.snippets == 0
            || question.trim().is_empty()
            || !self.session_memory_on(session).await?
        {
            return Ok(Vec::new());
        }
        if self.store.model(EMBEDDING_MODEL).await?.is_some() {
            // What was stored just now (a one-shot `baton chat` runs no indexer) is found
            // by meaning too; a large back-log is left to the indexer.
            if let Err(e) = self.embed_some(RECALL_EMBEDS_AT_MOST).await {
                tracing::warn!(error = %e, "new text could not be embedded");
            }
        }
        let filter = SearchFilter {
            not_session: Some(session.id.0.clone()),
            ..SearchFilter::default()
        };
        let hits = match self
            .search_memory(question, SearchMode::Hybrid, &filter, limits.snippets * 2)
            .await
        {
            Ok(hits) => hits,
            // A question of stop words only has nothing to look for.
            Err(RuntimeError::Store(baton_store::StoreError::Invalid(_))) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let by_meaning = hits.iter().any(|h| h.similarity.is_some());
        let mut budget = limits.memory_tokens as usize * CHARS_PER_TOKEN;
        let mut out = Vec::new();
        for hit in hits {
            if out.len() >= limits.snippets as usize {
                break;
            }
            // With vectors, only what is about the question; words alone are weaker.
            let relevant = match hit.similarity {
                Some(s) => s >= RECALL_MIN_SIMILARITY,
                None => !by_meaning && out.len() < 2,
            };
            // The same question asked before tells the model nothing, and led Qwen 1.5B
            // to answer it with a made-up value next to the real one.
            if !relevant || same_words(&hit.full_text, question) {
                continue;
            }
            let text = passage(&hit.full_text, RECALL_SNIPPET_CHARS.min(budget));
            if text.chars().count() < 20 {
                break;
            }
            budget = budget.saturating_sub(text.chars().count() + 40);
            out.push(baton_store::MessageSource {
                n: out.len() as u32 + 1,
                kind: hit.kind,
                ref_id: hit.ref_id,
                title: hit.title,
                text,
                session_id: hit.session_id,
                location: hit.location,
            });
        }
        Ok(out)
    }
}

/// Whether `a` and `b` have the same words, ignoring case and punctuation.
fn same_words(a: &str, b: &str) -> bool {
    let words = |t: &str| -> Vec<String> {
        t.split_whitespace()
            .map(|w| {
                w.trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase()
            })
            .filter(|w| !w.is_empty())
            .collect()
    };
    words(a) == words(b)
}

/// Characters per token assumed when budgeting text for a model (English averages about
/// four; three keeps a margin for code and other languages).
pub(crate) const CHARS_PER_TOKEN: usize = 3;
/// The least cosine similarity of a snippet given to the model (stricter than search:
/// an unrelated snippet misleads a small model).
pub const RECALL_MIN_SIMILARITY: f64 = 0.4;
/// Texts a turn embeds before it searches memory, at most.
const RECALL_EMBEDS_AT_MOST: u32 = 64;
/// Characters of one snippet at most.
const RECALL_SNIPPET_CHARS: usize = 700;

/// The system message that gives the model its snippets.
pub(crate) fn memory_message(sources: &[baton_store::MessageSource]) -> String {
    let mut text = format!(
        "{MEMORY_HEADER} (earlier conversations, screen captures, documents and task results). \
         Use a note only if it helps answer, and cite it as [n].\n"
    );
    for s in sources {
        let what = match s.kind.as_str() {
            "message" => format!("conversation \"{}\"", s.title),
            "capture" => s.title.clone(),
            "chunk" => format!("document {}", s.title),
            _ => s.title.clone(),
        };
        text.push_str(&format!("\n[{}] ({what}) {}\n", s.n, s.text));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::same_words;

    #[test]
    fn a_question_asked_again_has_the_same_words() {
        assert!(same_words(
            "What is the code of my locker at the swimming pool?",
            "what is the code of my locker at the swimming pool"
        ));
        assert!(!same_words(
            "The code of your locker at the swimming pool is 4719.",
            "What is the code of my locker at the swimming pool?"
        ));
    }
}
