//! `baton bench …`: benchmarks that print figures.

use crate::cli::BenchCommand;
use crate::commands::print_json;
use anyhow::Context;
use baton_core::Role;
use baton_store::{NewMessage, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

/// Runs a benchmark.
pub async fn run(cmd: BenchCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Store {
            messages,
            queries,
            dir,
        } => bench_store(messages, queries, dir, json).await,
        BenchCommand::Ocr(args) => crate::commands::vision::bench(args, json),
        BenchCommand::Tasks(args) => crate::commands::bench_tasks::run(args, json).await,
        BenchCommand::Memory(args) => crate::commands::bench_memory::run(args, json).await,
        BenchCommand::Llm(_) | BenchCommand::Stt(_) | BenchCommand::Api(_) => {
            unreachable!("`bench llm`, `bench stt` and `bench api` need the runtime and are dispatched in main")
        }
    }
}

/// A pseudo-vocabulary with a Zipf-like word distribution, so FTS posting lists have the
/// skew of real text: a few very common words and a long tail.
struct Vocabulary {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Vocabulary {
    fn new(size: usize, rng: &mut StdRng) -> Self {
        const SYLLABLES: [&str; 24] = [
            "ba", "ton", "ka", "ri", "lo", "men", "sa", "vi", "qu", "ex", "dor", "pel", "an",
            "tru", "mo", "zel", "fi", "gar", "ne", "ush", "ol", "pri", "sta", "wen",
        ];
        let mut words = Vec::with_capacity(size);
        let mut seen = std::collections::HashSet::new();
        while words.len() < size {
            let n = rng.gen_range(2..5);
            let w: String = (0..n)
                .map(|_| SYLLABLES[rng.gen_range(0..SYLLABLES.len())])
                .collect();
            if seen.insert(w.clone()) {
                words.push(w);
            }
        }
        let mut total = 0.0;
        let cumulative = (1..=size)
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect();
        Self { words, cumulative }
    }

    fn sample(&self, rng: &mut StdRng) -> &str {
        let x = rng.gen::<f64>() * self.cumulative.last().copied().unwrap_or(1.0);
        let i = self
            .cumulative
            .partition_point(|&c| c < x)
            .min(self.words.len() - 1);
        &self.words[i]
    }

    fn sentence(&self, rng: &mut StdRng, len: usize) -> String {
        let mut s = String::with_capacity(len * 7);
        for i in 0..len {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(self.sample(rng));
        }
        s
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn bench_store(
    messages: u64,
    queries: u32,
    dir: Option<std::path::PathBuf>,
    json: bool,
) -> anyhow::Result<()> {
    let temp;
    let dir = match dir {
        Some(dir) => dir,
        None => {
            temp = tempfile_dir()?;
            temp.clone()
        }
    };
    let store = Store::open_in(&dir).await?;
    let mut rng = StdRng::seed_from_u64(42);
    let vocab = Vocabulary::new(20_000, &mut rng);
    const PER_SESSION: u64 = 200;
    const BATCH: usize = 1000;
    if !json {
        eprintln!(
            "Inserting {messages} messages into {} …",
            store.path().display()
        );
    }

    // Reference: durable single appends (what one chat message costs), measured first.
    let reference_n = 500.min(messages.max(1));
    let session = store.create_session("bench reference").await?;
    let start = Instant::now();
    for _ in 0..reference_n {
        let len = rng.gen_range(8..40);
        store
            .append_message(
                &session.id,
                NewMessage::new(Role::User, vocab.sentence(&mut rng, len)),
            )
            .await?;
    }
    let single_rate = reference_n as f64 / start.elapsed().as_secs_f64();

    // Bulk: batches of 1,000 per transaction, sessions of 200 messages.
    let start = Instant::now();
    let mut inserted = 0u64;
    let mut last_report = Instant::now();
    while inserted < messages {
        let session = store
            .create_session(&format!("bench {}", inserted / PER_SESSION))
            .await?;
        let mut in_session = 0;
        while in_session < PER_SESSION && inserted < messages {
            let n = (BATCH as u64)
                .min(PER_SESSION - in_session)
                .min(messages - inserted) as usize;
            let batch: Vec<NewMessage> = (0..n)
                .map(|i| {
                    let role = if i % 2 == 0 {
                        Role::User
                    } else {
                        Role::Assistant
                    };
                    let len = rng.gen_range(8..60);
                    NewMessage::new(role, vocab.sentence(&mut rng, len))
                })
                .collect();
            store.import_messages(&session.id, &batch).await?;
            in_session += n as u64;
            inserted += n as u64;
        }
        if !json && last_report.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "  {inserted} inserted ({:.0}/s)",
                inserted as f64 / start.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    let bulk_secs = start.elapsed().as_secs_f64();
    let bulk_rate = inserted as f64 / bulk_secs;

    // Searches: one- and two-word queries over words of all frequencies.
    let mut single = Vec::new();
    let mut double = Vec::new();
    let mut total_hits = 0usize;
    for q in 0..queries {
        let query = if q % 2 == 0 {
            vocab.sample(&mut rng).to_owned()
        } else {
            format!("{} {}", vocab.sample(&mut rng), vocab.sample(&mut rng))
        };
        let t = Instant::now();
        total_hits += store.search_messages(&query, 20).await?.len();
        let elapsed = t.elapsed();
        if q % 2 == 0 {
            single.push(elapsed);
        } else {
            double.push(elapsed);
        }
    }
    single.sort();
    double.sort();
    let db_bytes = std::fs::metadata(store.path())
        .map(|m| m.len())
        .unwrap_or(0)
        + std::fs::metadata(store.path().with_extension("sqlite3-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    store.close().await;

    let report = serde_json::json!({
        "messages": inserted,
        "bulk_insert_per_sec": bulk_rate.round(),
        "bulk_insert_secs": (bulk_secs * 10.0).round() / 10.0,
        "durable_single_append_per_sec": single_rate.round(),
        "bulk_vs_single_ratio": (bulk_rate / single_rate * 10.0).round() / 10.0,
        "search_one_word_ms": { "p50": ms(percentile(&single, 0.5)), "p95": ms(percentile(&single, 0.95)) },
        "search_two_words_ms": { "p50": ms(percentile(&double, 0.5)), "p95": ms(percentile(&double, 0.95)) },
        "queries": queries,
        "mean_hits_per_query": total_hits as f64 / f64::from(queries.max(1)),
        "database_mib": (db_bytes as f64 / 1048576.0).round(),
    });
    if json {
        print_json(&report)?;
    } else {
        println!("baton bench store: {inserted} messages, {queries} searches (limit 20)");
        println!("  bulk insert (1,000/txn)      {bulk_rate:>10.0} msg/s   ({bulk_secs:.1} s)");
        println!("  durable single append        {single_rate:>10.0} msg/s   (reference, {reference_n} appends)");
        println!(
            "  bulk / single                {:>10.1} x",
            bulk_rate / single_rate
        );
        println!(
            "  FTS search, one word         p50 {:>7.2} ms   p95 {:>7.2} ms",
            ms(percentile(&single, 0.5)),
            ms(percentile(&single, 0.95))
        );
        println!(
            "  FTS search, two words        p50 {:>7.2} ms   p95 {:>7.2} ms",
            ms(percentile(&double, 0.5)),
            ms(percentile(&double, 0.95))
        );
        println!(
            "  database size                {:>10.0} MiB",
            db_bytes as f64 / 1048576.0
        );
    }
    if dir.starts_with(std::env::temp_dir())
        && dir
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("baton-bench-"))
    {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("baton-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
