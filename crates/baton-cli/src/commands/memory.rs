//! `baton search` (words and meaning over messages and captures) and `baton memory`
//! (the embedding back-fill and its state).

use baton_runtime::memory::{SearchMode, EMBEDDING_MODEL};
use baton_runtime::Runtime;
use clap::{Args, Subcommand};

use super::print_json;

/// Arguments of `baton search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// What to look for, in any words
    #[arg(required = true, num_args = 1..)]
    pub query: Vec<String>,
    /// Only by meaning (the embedding model)
    #[arg(long, conflicts_with = "words")]
    pub semantic: bool,
    /// Only by words (full-text search)
    #[arg(long)]
    pub words: bool,
    /// Only messages or only captures
    #[arg(long, value_parser = ["message", "capture"])]
    pub kind: Option<String>,
    /// Most results
    #[arg(long, default_value_t = 10)]
    pub limit: u32,
}

/// `baton memory …`
#[derive(Debug, Subcommand)]
pub enum MemoryCommand {
    /// How many stored texts have their vector
    Status,
    /// Embed every stored text that has no vector yet (safe to stop; it continues next time)
    Backfill,
}

/// `baton search`.
pub async fn search(args: SearchArgs, runtime: &Runtime, json: bool) -> anyhow::Result<()> {
    let mode = if args.semantic {
        SearchMode::Meaning
    } else if args.words {
        SearchMode::Words
    } else {
        SearchMode::Hybrid
    };
    if mode != SearchMode::Words {
        // New texts get their vectors before the search looks at them.
        runtime.embed_pending(|_, _| {}).await?;
    }
    let query = args.query.join(" ");
    let hits = runtime
        .search_memory(&query, mode, args.kind.as_deref(), args.limit)
        .await?;
    if json {
        return print_json(&hits);
    }
    if hits.is_empty() {
        println!("Nothing matches `{query}`.");
    }
    for (i, hit) in hits.iter().enumerate() {
        let when = chrono::DateTime::from_timestamp_millis(hit.created_at)
            .map(|t| {
                t.with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M")
                    .to_string()
            })
            .unwrap_or_default();
        println!("{}. {} · {} · {when}", i + 1, hit.title, hit.kind);
        println!("   {}", hit.text);
        for why in &hit.why {
            println!("   ↳ {why}");
        }
    }
    Ok(())
}

/// `baton memory …`.
pub async fn memory(cmd: MemoryCommand, runtime: &Runtime, json: bool) -> anyhow::Result<()> {
    match cmd {
        MemoryCommand::Status => {
            let counts = runtime.store().embedding_counts(EMBEDDING_MODEL).await?;
            if json {
                return print_json(&counts);
            }
            println!(
                "{} of {} stored texts have a vector ({EMBEDDING_MODEL}); `baton memory backfill` does the rest",
                counts.embedded, counts.total
            );
            Ok(())
        }
        MemoryCommand::Backfill => {
            let bar = if json {
                indicatif::ProgressBar::hidden()
            } else {
                indicatif::ProgressBar::new(0)
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {bar:30} {pos}/{len} texts · {per_sec} · {eta} left",
                )
                .expect("a valid template"),
            );
            let started = std::time::Instant::now();
            let done = runtime
                .embed_pending(|embedded, total| {
                    bar.set_length(total as u64);
                    bar.set_position(embedded as u64);
                })
                .await?;
            bar.finish_and_clear();
            if json {
                return print_json(&serde_json::json!({ "embedded": done }));
            }
            println!(
                "embedded {done} texts in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}
