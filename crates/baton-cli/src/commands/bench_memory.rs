//! `baton bench memory`: does search by meaning find what words miss, and how fast is it?
//!
//! 1. Retrieval: 50 notes are stored as messages, each with a question that asks for it in
//!    other words (`data/memory-pairs.tsv`); hit@1 and hit@5 of the right note for words
//!    only, meaning only and hybrid.
//! 2. Embedding throughput: the back-fill (store reads, the model, store writes) against
//!    the same ONNX model driven directly on the same texts, batch for batch.
//! 3. Query latency p50/p95 over `--messages` stored messages (default 100,000) that all
//!    have their vectors: filler sentences from a pool of real embeddings, reused.

use std::collections::HashMap;
use std::time::Instant;

use baton_core::{CancellationToken, Role};
use baton_runtime::memory::{SearchMode, EMBEDDING_MODEL, EMBED_BATCH};
use baton_runtime::{Paths, Runtime};
use baton_store::NewMessage;
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::json;

use super::print_json;

const PAIRS: &str = include_str!("../../data/memory-pairs.tsv");

/// Queries people type with the exact word they remember (a code, a name, a number), each
/// with the note (its first words) it should find: where words must not lose to meaning.
const EXACT: &[(&str, &str)] = &[
    ("seagull-42", "The wifi password"),
    ("LH402", "Flight LH402"),
    ("Tomasz", "New neighbour"),
    ("HP 305 XL", "The printer ink"),
    ("4711", "Bike lock code"),
    ("Middlemarch", "Book club"),
    ("0171 555 2938", "Sarah's phone"),
    ("Alfama Inn", "Hotel in Lisbon"),
    ("Acme 2024-117", "Invoice 2024-117"),
    ("penicillin", "I am allergic"),
];

/// Arguments of `baton bench memory`.
#[derive(Debug, Args)]
pub struct BenchMemoryArgs {
    /// Stored messages the query latency is measured over
    #[arg(long, default_value_t = 100_000)]
    pub messages: usize,
    /// Distinct filler sentences embedded for them (they repeat)
    #[arg(long, default_value_t = 2_000)]
    pub pool: usize,
}

fn pairs() -> Vec<(&'static str, &'static str)> {
    PAIRS
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once('\t'))
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    baton_store::percentile(sorted, p / 100.0).unwrap_or(0.0)
}

/// A filler sentence about everyday things.
fn filler(rng: &mut StdRng) -> String {
    const WHO: &[&str] = &[
        "Alex",
        "The team",
        "My sister",
        "Our landlord",
        "The client",
        "Jonas",
        "The teacher",
        "Dad",
        "The council",
        "Mia",
    ];
    const DID: &[&str] = &[
        "asked about",
        "forgot",
        "sent over",
        "complained about",
        "fixed",
        "postponed",
        "approved",
        "ordered",
        "cancelled",
        "mentioned",
    ];
    const WHAT: &[&str] = &[
        "the quarterly report",
        "a new sofa",
        "the parking permit",
        "the broken window",
        "tickets for the concert",
        "the school trip",
        "a software update",
        "the garden fence",
        "the budget draft",
        "the photo album",
        "a birthday cake",
        "the train timetable",
    ];
    const WHEN: &[&str] = &[
        "yesterday",
        "last week",
        "this morning",
        "on Friday",
        "before lunch",
        "after the meeting",
        "in April",
        "tonight",
    ];
    format!(
        "{} {} {} {}.",
        WHO[rng.gen_range(0..WHO.len())],
        DID[rng.gen_range(0..DID.len())],
        WHAT[rng.gen_range(0..WHAT.len())],
        WHEN[rng.gen_range(0..WHEN.len())]
    )
}

/// `baton bench memory`.
pub async fn run(args: BenchMemoryArgs, json: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let defaults = Paths::resolve(None, None);
    let paths = Paths {
        data_dir: dir.path().join("data"),
        config_file: dir.path().join("config.toml"),
        state_dir: dir.path().join("state"),
        models_dir: defaults.models_dir,
    };
    let runtime = Runtime::open(paths).await?;
    // Registers the model (already fetched: checked, not downloaded again).
    runtime
        .fetch_model(EMBEDDING_MODEL, &|_| {}, CancellationToken::new())
        .await?;
    let embedder = runtime.embedder().await?;
    let store = runtime.store();

    // 1. Retrieval.
    let pairs = pairs();
    let session = store.create_session("notes").await?;
    let mut note_ids = Vec::new();
    for (note, _) in &pairs {
        let m = store
            .append_message(&session.id, NewMessage::new(Role::User, *note))
            .await?;
        note_ids.push(m.id);
    }
    let started = Instant::now();
    runtime.embed_pending(|_, _| {}).await?;
    let backfill_secs = started.elapsed().as_secs_f64();
    let mut hits: HashMap<&str, (usize, usize)> = HashMap::new();
    for ((_, question), id) in pairs.iter().zip(&note_ids) {
        for (name, mode) in [
            ("words", SearchMode::Words),
            ("meaning", SearchMode::Meaning),
            ("hybrid", SearchMode::Hybrid),
        ] {
            let found = runtime
                .search_memory(question, mode, &baton_runtime::SearchFilter::default(), 5)
                .await?;
            let rank = found
                .iter()
                .position(|h| h.kind == "message" && h.ref_id == *id);
            let entry = hits.entry(name).or_default();
            entry.0 += usize::from(rank == Some(0));
            entry.1 += usize::from(rank.is_some());
        }
    }
    for (query, note) in EXACT {
        let index = pairs
            .iter()
            .position(|(text, _)| text.starts_with(note))
            .ok_or_else(|| anyhow::anyhow!("no note starts with `{note}`"))?;
        for (name, mode) in [
            ("exact_words", SearchMode::Words),
            ("exact_meaning", SearchMode::Meaning),
            ("exact_hybrid", SearchMode::Hybrid),
        ] {
            let found = runtime
                .search_memory(query, mode, &baton_runtime::SearchFilter::default(), 5)
                .await?;
            let rank = found
                .iter()
                .position(|h| h.kind == "message" && h.ref_id == note_ids[index]);
            let entry = hits.entry(name).or_default();
            entry.0 += usize::from(rank == Some(0));
            entry.1 += usize::from(rank.is_some());
        }
    }
    let rate = |name: &str, at5: bool| {
        let n = if name.starts_with("exact") {
            EXACT.len()
        } else {
            pairs.len()
        } as f64;
        let (h1, h5) = hits.get(name).copied().unwrap_or_default();
        if at5 {
            h5 as f64 / n
        } else {
            h1 as f64 / n
        }
    };

    // 2. Throughput: the back-fill against the model alone, on the same texts.
    let mut rng = StdRng::seed_from_u64(7);
    let pool: Vec<String> = (0..args.pool).map(|_| filler(&mut rng)).collect();
    let pool_session = store.create_session("filler").await?;
    let batch: Vec<NewMessage> = pool
        .iter()
        .map(|t| NewMessage::new(Role::User, t.as_str()))
        .collect();
    store.import_messages(&pool_session.id, &batch).await?;
    let started = Instant::now();
    let embedded = runtime.embed_pending(|_, _| {}).await?;
    let backfill_rate = embedded as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut vectors: HashMap<String, Vec<f32>> = HashMap::new();
    for chunk in pool.chunks(EMBED_BATCH) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let out = embedder.embed(&refs)?;
        for (text, v) in chunk.iter().zip(out) {
            vectors.insert(text.clone(), v);
        }
    }
    let direct_rate = pool.len() as f64 / started.elapsed().as_secs_f64();

    // 3. Query latency over many stored messages with vectors.
    let mut stored = pairs.len() + pool.len();
    while stored < args.messages {
        let session = store.create_session("filler").await?;
        let n = 1000.min(args.messages - stored);
        let batch: Vec<NewMessage> = (0..n)
            .map(|i| NewMessage::new(Role::User, pool[(stored + i) % pool.len()].as_str()))
            .collect();
        store.import_messages(&session.id, &batch).await?;
        stored += n;
    }
    loop {
        let pending = store.pending_embeddings(embedder.name(), 5000).await?;
        if pending.is_empty() {
            break;
        }
        let items: Vec<_> = pending
            .into_iter()
            .filter_map(|p| vectors.get(&p.text).cloned().map(|v| (p, v)))
            .collect();
        anyhow::ensure!(!items.is_empty(), "filler texts without a vector");
        store.save_embeddings(embedder.name(), &items).await?;
    }
    let counts = store.embedding_counts(embedder.name()).await?;
    let mut latencies = Vec::new();
    for (_, question) in pairs.iter().chain(pairs.iter()) {
        let started = Instant::now();
        runtime
            .search_memory(
                question,
                SearchMode::Hybrid,
                &baton_runtime::SearchFilter::default(),
                10,
            )
            .await?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    runtime.close().await;

    let report = json!({
        "pairs": pairs.len(),
        "hit_at_1": { "words": rate("words", false), "meaning": rate("meaning", false), "hybrid": rate("hybrid", false) },
        "hit_at_5": { "words": rate("words", true), "meaning": rate("meaning", true), "hybrid": rate("hybrid", true) },
        "exact_queries": EXACT.len(),
        "exact_hit_at_1": { "words": rate("exact_words", false), "meaning": rate("exact_meaning", false), "hybrid": rate("exact_hybrid", false) },
        "embedding": {
            "backfill_per_s": backfill_rate,
            "direct_per_s": direct_rate,
            "ratio": backfill_rate / direct_rate,
            "first_backfill_s": backfill_secs,
        },
        "query": {
            "stored_messages": counts.total,
            "with_vectors": counts.embedded,
            "hybrid_p50_ms": percentile(&latencies, 50.0),
            "hybrid_p95_ms": percentile(&latencies, 95.0),
        },
    });
    if json {
        return print_json(&report);
    }
    println!("Retrieval, {} notes asked for in other words:", pairs.len());
    println!("               hit@1   hit@5");
    for name in ["words", "meaning", "hybrid"] {
        println!(
            "  {name:<10} {:>7.0}% {:>6.0}%",
            rate(name, false) * 100.0,
            rate(name, true) * 100.0
        );
    }
    println!(
        "Exact words remembered (a code, a name), {} queries:",
        EXACT.len()
    );
    println!("               hit@1   hit@5");
    for name in ["words", "meaning", "hybrid"] {
        let key = format!("exact_{name}");
        println!(
            "  {name:<10} {:>7.0}% {:>6.0}%",
            rate(&key, false) * 100.0,
            rate(&key, true) * 100.0
        );
    }
    println!(
        "Embedding ({EMBEDDING_MODEL}, batches of {EMBED_BATCH}): back-fill {backfill_rate:.0} texts/s, the model alone {direct_rate:.0} texts/s (ratio {:.2})",
        backfill_rate / direct_rate
    );
    println!(
        "Hybrid query over {} stored messages ({} with vectors): p50 {:.1} ms, p95 {:.1} ms",
        counts.total,
        counts.embedded,
        percentile(&latencies, 50.0),
        percentile(&latencies, 95.0)
    );
    Ok(())
}
