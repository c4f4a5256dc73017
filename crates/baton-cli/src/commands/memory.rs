//! `baton search` (words and meaning over messages, captures, documents and task
//! outputs), `baton memory` (its switches, the embedding back-fill and its state) and
//! `baton docs` (the documents in memory).

use std::path::PathBuf;

use baton_runtime::memory::{SearchMode, EMBEDDING_MODEL};
use baton_runtime::{MemorySettings, Runtime, SearchFilter};
use clap::{Args, Subcommand};

use super::print_json;

/// Milliseconds since the epoch of the start of a local day `YYYY-MM-DD`.
fn day_start_ms(day: &str) -> anyhow::Result<i64> {
    let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|e| anyhow::anyhow!("`{day}` is not a date like 2026-11-30: {e}"))?;
    let local = date
        .and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(chrono::Local).earliest())
        .ok_or_else(|| anyhow::anyhow!("`{day}` does not exist in the local time zone"))?;
    Ok(local.timestamp_millis())
}

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
    /// Only one kind: messages, captures, document chunks or task outputs
    #[arg(long, value_parser = ["message", "capture", "chunk", "task"])]
    pub kind: Option<String>,
    /// Only one session's messages (its id, or a unique prefix or suffix)
    #[arg(long)]
    pub session: Option<String>,
    /// Only what was stored on or after this day (YYYY-MM-DD)
    #[arg(long)]
    pub since: Option<String>,
    /// Only what was stored before this day (YYYY-MM-DD)
    #[arg(long)]
    pub until: Option<String>,
    /// Most results
    #[arg(long, default_value_t = 10)]
    pub limit: u32,
}

/// `baton memory …`
#[derive(Debug, Subcommand)]
pub enum MemoryCommand {
    /// Whether memory is on, and how many stored texts have their vector
    Status,
    /// Embed every stored text that has no vector yet (safe to stop; it continues next time)
    Backfill,
    /// Give answers snippets from memory (sessions that do not set their own)
    On,
    /// Answer without memory (sessions that do not set their own)
    Off,
    /// Whether snippets may be sent to remote engines (they leave this machine)
    Remote {
        /// on or off
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Memory for one session: on, off, or default (follow the global switch)
    Session {
        /// The session (its id, or a unique prefix or suffix)
        id: String,
        /// on, off or default
        #[arg(value_parser = ["on", "off", "default"])]
        state: String,
    },
}

/// `baton docs …`
#[derive(Debug, Subcommand)]
pub enum DocsCommand {
    /// Add folders or files to memory (text, Markdown, code, PDF) and index them
    Add {
        /// Folders or files
        #[arg(required = true, num_args = 1..)]
        paths: Vec<PathBuf>,
    },
    /// The folders and files in memory; with one of them, its files and what was skipped
    List {
        /// A root's id or path
        root: Option<String>,
    },
    /// Remove a folder or file from memory (its chunks and vectors go with it)
    Remove {
        /// A root's id or path
        root: String,
    },
    /// Read again what changed under every root since it was last read
    Reindex,
    /// Watch every root and read again what changes, until Ctrl-C
    Watch,
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
    let installed = runtime.store().model(EMBEDDING_MODEL).await?.is_some();
    if mode == SearchMode::Meaning && !installed {
        anyhow::bail!(
            "search by meaning needs the embedding model: `baton models fetch {EMBEDDING_MODEL}`"
        );
    }
    if mode != SearchMode::Words && installed {
        // New texts get their vectors before the search looks at them.
        runtime.embed_pending(|_, _| {}).await?;
    }
    if mode == SearchMode::Hybrid && !installed && !json {
        eprintln!("(by words only: `baton models fetch {EMBEDDING_MODEL}` adds search by meaning)");
    }
    let session = match &args.session {
        Some(s) => Some(runtime.store().find_session(s).await?.id.0),
        None => None,
    };
    let filter = SearchFilter {
        kind: args.kind.clone(),
        session,
        not_session: None,
        since_ms: args.since.as_deref().map(day_start_ms).transpose()?,
        until_ms: args.until.as_deref().map(day_start_ms).transpose()?,
    };
    let query = args.query.join(" ");
    let hits = runtime
        .search_memory(&query, mode, &filter, args.limit)
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
        let place = hit
            .location
            .as_deref()
            .filter(|_| hit.kind == "chunk")
            .map(|p| format!(" · {p}"))
            .unwrap_or_default();
        println!("{}. {} · {} · {when}{place}", i + 1, hit.title, hit.kind);
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
            let settings = runtime.memory_settings().await?;
            let roots = runtime.store().doc_roots().await?;
            if json {
                return print_json(&serde_json::json!({
                    "settings": settings, "vectors": counts, "documents": roots,
                }));
            }
            let onoff = |b: bool| if b { "on" } else { "off" };
            println!(
                "memory: {} · to remote engines: {}",
                onoff(settings.enabled),
                onoff(settings.remote)
            );
            println!(
                "{} of {} stored texts have a vector ({EMBEDDING_MODEL}){}",
                counts.embedded,
                counts.total,
                if counts.embedded < counts.total {
                    "; `baton memory backfill` does the rest"
                } else {
                    ""
                }
            );
            let files: i64 = roots.iter().map(|r| r.indexed).sum();
            let chunks: i64 = roots.iter().map(|r| r.chunks).sum();
            println!(
                "documents: {} roots, {files} files, {chunks} chunks (`baton docs list`)",
                roots.len()
            );
            Ok(())
        }
        MemoryCommand::On | MemoryCommand::Off | MemoryCommand::Remote { .. } => {
            let mut settings = runtime.memory_settings().await?;
            match &cmd {
                MemoryCommand::On => settings.enabled = true,
                MemoryCommand::Off => settings.enabled = false,
                MemoryCommand::Remote { state } => settings.remote = state == "on",
                _ => unreachable!("matched above"),
            }
            runtime.set_memory_settings(settings).await?;
            report_settings(settings, json)
        }
        MemoryCommand::Session { id, state } => {
            let session = runtime.store().find_session(&id).await?;
            let memory = match state.as_str() {
                "on" => Some(true),
                "off" => Some(false),
                _ => None,
            };
            let session = runtime
                .store()
                .set_session_memory(&session.id, memory)
                .await?;
            if json {
                return print_json(&session);
            }
            println!(
                "memory in \"{}\": {}",
                session.title,
                match session.memory {
                    Some(true) => "on",
                    Some(false) => "off",
                    None => "as the global switch says",
                }
            );
            Ok(())
        }
        MemoryCommand::Backfill => {
            let bar = progress_bar(
                json,
                "{spinner} {bar:30} {pos}/{len} texts · {per_sec} · {eta} left",
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

fn report_settings(settings: MemorySettings, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&settings);
    }
    println!(
        "memory is {} for sessions that do not set their own; snippets {} sent to remote engines",
        if settings.enabled { "on" } else { "off" },
        if settings.remote { "are" } else { "are not" }
    );
    Ok(())
}

fn progress_bar(json: bool, template: &str) -> indicatif::ProgressBar {
    let bar = if json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(0)
    };
    bar.set_style(indicatif::ProgressStyle::with_template(template).expect("a valid template"));
    bar
}

/// Embeds what indexing added, with a progress bar (when the model is installed).
async fn embed_new(runtime: &Runtime, json: bool) -> anyhow::Result<()> {
    if runtime.store().model(EMBEDDING_MODEL).await?.is_none() {
        if !json {
            println!(
                "(found by words only: `baton models fetch {EMBEDDING_MODEL}` adds search by meaning)"
            );
        }
        return Ok(());
    }
    let bar = progress_bar(json, "embedding {bar:30} {pos}/{len} texts · {eta} left");
    runtime
        .embed_pending(|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .await?;
    bar.finish_and_clear();
    Ok(())
}

fn size(bytes: i64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / 1_048_576.0),
        b if b >= 1 << 10 => format!("{:.0} KB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn print_root(root: &baton_store::DocRoot) {
    println!(
        "{:>3}  {}  · {} files, {} chunks, {}{}",
        root.id,
        root.path,
        root.indexed,
        root.chunks,
        size(root.bytes),
        if root.skipped > 0 {
            format!(", {} skipped", root.skipped)
        } else {
            String::new()
        }
    );
}

fn print_report(report: &baton_runtime::IndexReport) {
    println!(
        "     {} new, {} changed, {} unchanged, {} gone",
        report.added, report.updated, report.unchanged, report.removed
    );
    for (path, reason) in &report.skipped {
        println!("     skipped {path}: {reason}");
    }
}

/// `baton docs …`.
pub async fn docs(cmd: DocsCommand, runtime: &Runtime, json: bool) -> anyhow::Result<()> {
    match cmd {
        DocsCommand::Add { paths } => {
            let mut out = Vec::new();
            let mut failed = 0;
            for path in paths {
                let bar = progress_bar(json, "reading {bar:30} {pos}/{len} files");
                let result = runtime
                    .add_documents(&path, |done, total| {
                        bar.set_length(total as u64);
                        bar.set_position(done as u64);
                    })
                    .await;
                bar.finish_and_clear();
                match result {
                    Ok((root, report)) => {
                        if !json {
                            print_root(&root);
                            print_report(&report);
                        }
                        out.push(serde_json::json!({ "root": root, "report": report }));
                    }
                    Err(e) => {
                        // One bad path does not stop the others.
                        failed += 1;
                        eprintln!("error: {e}");
                        out.push(serde_json::json!({ "path": path, "error": e.to_string() }));
                    }
                }
            }
            embed_new(runtime, json).await?;
            if json {
                print_json(&out)?;
            }
            if failed > 0 {
                anyhow::bail!("{failed} of the paths could not be added");
            }
            Ok(())
        }
        DocsCommand::List { root: None } => {
            let roots = runtime.store().doc_roots().await?;
            if json {
                return print_json(&roots);
            }
            if roots.is_empty() {
                println!("No documents yet: `baton docs add FOLDER` adds some.");
            }
            for root in &roots {
                print_root(root);
            }
            Ok(())
        }
        DocsCommand::List { root: Some(root) } => {
            let root = runtime
                .store()
                .doc_root(&root)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no documents were added as `{root}`"))?;
            let docs = runtime.store().documents(root.id).await?;
            if json {
                return print_json(&serde_json::json!({ "root": root, "documents": docs }));
            }
            print_root(&root);
            for d in &docs {
                match &d.reason {
                    Some(reason) => println!("     skipped  {}: {reason}", d.path),
                    None => println!(
                        "     {:<8} {} · {} chunks, {}",
                        d.format,
                        d.path,
                        d.chunks,
                        size(d.size)
                    ),
                }
            }
            Ok(())
        }
        DocsCommand::Remove { root } => {
            let root = runtime.remove_documents(&root).await?;
            if json {
                return print_json(&root);
            }
            println!(
                "removed {} ({} files, {} chunks)",
                root.path, root.indexed, root.chunks
            );
            Ok(())
        }
        DocsCommand::Reindex => {
            let results = runtime.index_all_documents().await?;
            for (root, result) in &results {
                if json {
                    continue;
                }
                print_root(root);
                match result {
                    Ok(report) => print_report(report),
                    Err(e) => println!("     {e}"),
                }
            }
            embed_new(runtime, json).await?;
            if json {
                let out: Vec<_> = results
                    .iter()
                    .map(|(root, r)| match r {
                        Ok(report) => serde_json::json!({ "root": root, "report": report }),
                        Err(e) => serde_json::json!({ "root": root, "error": e }),
                    })
                    .collect();
                print_json(&out)?;
            }
            Ok(())
        }
        DocsCommand::Watch => {
            let _watcher = runtime
                .watch_documents(std::time::Duration::from_millis(500))
                .await?;
            let _indexer = runtime.spawn_memory_indexer();
            let roots = runtime.store().doc_roots().await?;
            println!(
                "watching {} roots; changes are read again and embedded. Ctrl-C stops.",
                roots.len()
            );
            tokio::signal::ctrl_c().await?;
            Ok(())
        }
    }
}
