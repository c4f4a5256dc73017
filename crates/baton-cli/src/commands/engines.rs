//! `baton engines`: remote OpenAI-compatible endpoints (Ollama, vLLM, llama.cpp's server,
//! OpenRouter, another Baton's `baton serve`), and `baton stats`.

use crate::commands::print_json;
use anyhow::Context;
use baton_runtime::{AddEngine, Runtime};
use std::io::{IsTerminal, Read};

/// `baton engines …`
#[derive(Debug, clap::Subcommand)]
pub enum EnginesCommand {
    /// Add (or replace) an endpoint; checks that it answers and lists its models
    Add {
        /// Short name; its models become NAME/MODEL
        name: String,
        /// Base URL up to the API version, e.g. http://127.0.0.1:11434/v1
        #[arg(long)]
        url: String,
        /// Read the API key from standard input (kept in the OS keyring, or the encrypted
        /// key file with `secrets.store = "file"`; never in the database or logs)
        #[arg(long)]
        key_stdin: bool,
        /// Use only these models (comma-separated) [default: every model it lists]
        #[arg(long, value_delimiter = ',')]
        models: Vec<String>,
        /// US dollars per million prompt tokens
        #[arg(long, default_value_t = 0.0)]
        input_price: f64,
        /// US dollars per million generated tokens
        #[arg(long, default_value_t = 0.0)]
        output_price: f64,
    },
    /// List endpoints with their models and circuit-breaker state
    List,
    /// Remove an endpoint and its key
    Remove {
        /// Its name
        name: String,
    },
    /// Check that an endpoint answers, and how fast
    Test {
        /// Its name
        name: String,
    },
}

/// Runs `baton engines …`.
pub async fn run(cmd: EnginesCommand, runtime: &Runtime, json: bool) -> anyhow::Result<()> {
    match cmd {
        EnginesCommand::Add {
            name,
            url,
            key_stdin,
            models,
            input_price,
            output_price,
        } => {
            let api_key = if key_stdin {
                if std::io::stdin().is_terminal() {
                    eprintln!("Paste the API key and press Enter, then Ctrl-D:");
                }
                let mut key = String::new();
                std::io::stdin()
                    .read_to_string(&mut key)
                    .context("cannot read the API key from standard input")?;
                Some(key.trim().to_owned()).filter(|k| !k.is_empty())
            } else {
                None
            };
            let record = runtime
                .add_engine(AddEngine {
                    name,
                    base_url: url,
                    api_key,
                    models,
                    input_usd_per_mtok: input_price,
                    output_usd_per_mtok: output_price,
                })
                .await?;
            if json {
                return print_json(&record);
            }
            println!(
                "Added {} ({}) with {} model(s): {}",
                record.name,
                record.base_url,
                record.models.len(),
                record
                    .models
                    .iter()
                    .map(|m| format!("{}/{m}", record.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if record.key_store != "none" {
                println!("Its API key is in the {} key store.", record.key_store);
            }
        }
        EnginesCommand::List => {
            let engines = runtime.engine_statuses().await?;
            if json {
                return print_json(&engines);
            }
            if engines.is_empty() {
                println!("No remote engines. Add one with `baton engines add NAME --url http://127.0.0.1:11434/v1`.");
            }
            for e in engines {
                let r = &e.record;
                println!(
                    "{}  {}  breaker {} ({:.0}% failing)  key: {}  ${:.2}/${:.2} per Mtok",
                    r.name,
                    r.base_url,
                    e.breaker,
                    e.failure_rate * 100.0,
                    r.key_store,
                    r.input_usd_per_mtok,
                    r.output_usd_per_mtok
                );
                for m in &r.models {
                    println!("    {}/{m}", r.name);
                }
            }
        }
        EnginesCommand::Remove { name } => {
            if !runtime.remove_engine(&name).await? {
                anyhow::bail!("there is no engine `{name}`; see `baton engines list`");
            }
            if !json {
                println!("Removed {name} and its key.");
            }
        }
        EnginesCommand::Test { name } => {
            let health = runtime.test_engine(&name).await?;
            if json {
                return print_json(&health);
            }
            println!(
                "{name} answers in {} ms: {}",
                health.latency_ms, health.detail
            );
        }
    }
    Ok(())
}

/// Runs `baton stats`: per model and per mode success, latency, speed, cost and ratings.
pub async fn stats(runtime: &Runtime, json: bool) -> anyhow::Result<()> {
    let stats = runtime.store().stats().await?;
    if json {
        return print_json(&stats);
    }
    if stats.models.is_empty() {
        println!("No runs recorded yet. Ask something with `baton chat`.");
        return Ok(());
    }
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
    for (title, rows) in [("model", &stats.models), ("mode", &stats.modes)] {
        println!(
            "{:<32} {:>6} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9}",
            title, "runs", "ok", "p50 ms", "p95 ms", "tok/s", "cost $", "up/down"
        );
        for s in rows.iter() {
            println!(
                "{:<32} {:>6} {:>7.0}% {:>8} {:>8} {:>8} {:>10.4} {:>9}",
                s.key,
                s.runs,
                s.success_rate * 100.0,
                ms(s.p50_ms),
                ms(s.p95_ms),
                s.tokens_per_second
                    .map_or("-".into(), |v| format!("{v:.1}")),
                s.cost_usd,
                format!("{}/{}", s.thumbs_up, s.thumbs_down)
            );
        }
        println!();
    }
    let accuracy = if stats.routed_rated == 0 {
        "no routed answer rated yet".to_owned()
    } else {
        format!(
            "{:.0}% of {} rated routed answers were rated up",
            stats.routed_up as f64 * 100.0 / stats.routed_rated as f64,
            stats.routed_rated
        )
    };
    println!(
        "Routing: {} decisions ({} canary); selection accuracy: {accuracy}",
        stats.decisions, stats.canary_decisions
    );
    Ok(())
}

/// Runs `baton rate MESSAGE_ID up|down|clear`.
pub async fn rate(runtime: &Runtime, message: i64, rating: &str) -> anyhow::Result<()> {
    let value = match rating {
        "up" | "+1" | "1" => Some(1),
        "down" | "-1" => Some(-1),
        "clear" | "none" => None,
        other => anyhow::bail!("`{other}` is not a rating: use up, down or clear"),
    };
    runtime.store().rate_message(message, value).await?;
    Ok(())
}
