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

/// One search result.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryHit {
    /// `message` or `capture`.
    pub kind: String,
    /// Its row id.
    pub ref_id: i64,
    /// The session's title, or the capture's source.
    pub title: String,
    /// The session (messages).
    pub session_id: Option<String>,
    /// The text (a passage of it).
    pub text: String,
    /// When it was stored, ms since the epoch.
    pub created_at: i64,
    /// The fused score (higher is better).
    pub score: f64,
    /// Why it matched: its words (with the passage) and/or its meaning (with similarity).
    pub why: Vec<String>,
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

    /// Embeds texts (on a blocking thread).
    pub async fn embed_texts(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, RuntimeError> {
        let embedder = self.embedder().await?;
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            embedder.embed(&refs)
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
            let batch = self
                .store
                .pending_embeddings(&model, EMBED_BATCH as u32)
                .await?;
            if batch.is_empty() {
                break;
            }
            let texts: Vec<String> = batch.iter().map(|p| p.text.clone()).collect();
            let vectors = self.embed_texts(texts).await?;
            let items: Vec<_> = batch.into_iter().zip(vectors).collect();
            let saved = self.store.save_embeddings(&model, &items).await?;
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

    /// Searches what Baton has stored (messages and captures) for `query`.
    pub async fn search_memory(
        &self,
        query: &str,
        mode: SearchMode,
        kind: Option<&str>,
        limit: u32,
    ) -> Result<Vec<MemoryHit>, RuntimeError> {
        let words = if mode == SearchMode::Meaning {
            Vec::new()
        } else {
            self.store.words_ranked(query, kind, CANDIDATES).await?
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
                .nearest(embedder.name(), &vector, kind, CANDIDATES)
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
        let top: Vec<((String, i64), f64)> = fused.into_iter().take(limit as usize).collect();
        let keys: Vec<(String, i64)> = top.iter().map(|(k, _)| k.clone()).collect();
        let items = self.store.memory_items(&keys).await?;
        let mut out = Vec::with_capacity(items.len());
        for ((k, score), item) in top.iter().zip(items) {
            debug_assert_eq!(k, &(item.kind.clone(), item.ref_id));
            let mut why = Vec::new();
            let mut text = item.text.clone();
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
                text: passage(&text, 240),
                created_at: item.created_at,
                score: *score,
                why,
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
