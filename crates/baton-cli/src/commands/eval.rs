//! `baton eval`: question sets over models and modes, scores per domain, comparisons.

use super::print_json;
use anyhow::{bail, Context as _};
use baton_eval::{paired_difference, wilson_interval, EvalSet};
use baton_runtime::{EvalPlan, EvalProgress, EvalTarget, Mode, Runtime};
use baton_store::{EvalResult, EvalScore};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;

/// `baton eval …`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    command: Option<EvalCommand>,
    #[command(flatten)]
    run: RunArgs,
}

/// Running question sets (the default action).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Question sets: general, arithmetic, code, writing, translation, all (the default),
    /// or a .jsonl file (one {"id", "domain", "prompt", "check"} object per line)
    sets: Vec<String>,
    /// Models to evaluate, comma-separated (`auto` is the router) [default: every installed chat model]
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Modes: single, fanout, refine, comma-separated; fanout and refine use the router's
    /// choice (auto) as the primary model [default: single]
    #[arg(long, value_delimiter = ',', default_value = "single")]
    modes: Vec<String>,
    /// At most this many questions per set (the first ones)
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(Debug, Subcommand)]
enum EvalCommand {
    /// List evaluation runs
    Runs {
        /// Most runs to list
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Scores of one run per target and domain, and its failed questions
    Show {
        /// The run's id (from `baton eval runs`)
        run: i64,
        /// Also print every failed answer
        #[arg(long)]
        failures: bool,
    },
    /// Compare two targets (`model` or `model/mode`) on the questions both answered:
    /// the difference of their pass rates with a 95% interval
    Compare {
        /// First target
        a: String,
        /// Second target
        b: String,
        /// Only this set's questions
        #[arg(long)]
        set: Option<String>,
    },
}

/// Runs `baton eval`.
pub async fn run(args: EvalArgs, runtime: &Runtime, json: bool) -> anyhow::Result<()> {
    match args.command {
        Some(EvalCommand::Runs { limit }) => runs(runtime, limit, json).await,
        Some(EvalCommand::Show { run, failures }) => show(runtime, run, failures, json).await,
        Some(EvalCommand::Compare { a, b, set }) => {
            compare(runtime, &a, &b, set.as_deref(), json).await
        }
        None => evaluate(args.run, runtime, json).await,
    }
}

fn load_sets(names: &[String]) -> anyhow::Result<Vec<EvalSet>> {
    if names.is_empty() || names.iter().any(|n| n == "all") {
        return Ok(baton_eval::builtin_sets());
    }
    names
        .iter()
        .map(|n| baton_eval::load_set(n).map_err(anyhow::Error::from))
        .collect()
}

async fn targets(
    runtime: &Runtime,
    models: &[String],
    modes: &[String],
) -> anyhow::Result<Vec<EvalTarget>> {
    let modes: Vec<Mode> = modes
        .iter()
        .map(|m| m.parse().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<_>>()?;
    Ok(runtime.eval_targets(models, &modes).await?)
}

async fn evaluate(args: RunArgs, runtime: &Runtime, json: bool) -> anyhow::Result<()> {
    let sets = load_sets(&args.sets)?;
    let targets = targets(runtime, &args.models, &args.modes).await?;
    let plan = EvalPlan {
        sets,
        targets,
        limit: args.limit,
    };
    let bar = if json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(0)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {bar:30} {pos}/{len} answers · {elapsed} · {msg}",
        )
        .expect("a valid template"),
    );
    let passed = std::sync::atomic::AtomicUsize::new(0);
    let on_progress = |p: EvalProgress| match p {
        EvalProgress::Started { run_id, total } => {
            bar.set_length(total as u64);
            bar.set_message(format!("run {run_id}"));
        }
        EvalProgress::Scored { done, result, .. } => {
            let ok = passed.fetch_add(
                usize::from(result.passed),
                std::sync::atomic::Ordering::SeqCst,
            ) + usize::from(result.passed);
            bar.set_position(done as u64);
            bar.set_message(format!(
                "{ok} passed · {} {} {}",
                result.model,
                result.item_id,
                if result.passed { "✓" } else { "✗" }
            ));
        }
    };
    let ctrl_c = super::CtrlC::watch();
    let report = runtime
        .run_eval(&plan, &on_progress, ctrl_c.token())
        .await?;
    bar.finish_and_clear();
    if json {
        return print_json(&serde_json::json!({
            "run": report.run_id,
            "cancelled": report.cancelled,
            "machine": runtime.machine_summary(),
            "scores": report.scores,
        }));
    }
    println!(
        "eval run {} · {} answers · {}{}",
        report.run_id,
        report.results.len(),
        runtime.machine_summary(),
        if report.cancelled {
            " · cancelled"
        } else {
            ""
        }
    );
    print_scores(&report.scores);
    println!("\nDetails: baton eval show {} --failures", report.run_id);
    Ok(())
}

/// The domains in the order tables show them.
const DOMAINS: [&str; 5] = ["general", "math", "code", "writing", "translation"];

fn print_scores(scores: &[EvalScore]) {
    let mut by_target: BTreeMap<(String, String), BTreeMap<String, &EvalScore>> = BTreeMap::new();
    for s in scores {
        by_target
            .entry((s.model.clone(), s.mode.clone()))
            .or_default()
            .insert(s.domain.clone(), s);
    }
    let domains: Vec<&str> = DOMAINS
        .iter()
        .copied()
        .filter(|d| scores.iter().any(|s| s.domain == *d))
        .collect();
    print!("{:<36}", "model/mode");
    for d in &domains {
        print!(" {d:>11}");
    }
    println!(
        " {:>15} {:>9} {:>7} {:>9}",
        "all (95% CI)", "s/answer", "tok/s", "cost $"
    );
    for ((model, mode), row) in &by_target {
        print!("{:<36}", format!("{model}/{mode}"));
        for d in &domains {
            match row.get(*d) {
                Some(s) => print!(" {:>11}", format!("{:.0}% ({})", s.rate() * 100.0, s.total)),
                None => print!(" {:>11}", "-"),
            }
        }
        if let Some(all) = row.get("all") {
            let ci = wilson_interval(all.passed, all.total).map_or(String::new(), |i| {
                format!(" {:.0}–{:.0}", i.low * 100.0, i.high * 100.0)
            });
            println!(
                " {:>15} {:>9.1} {:>7} {:>9.4}",
                format!("{:.0}%{ci}", all.rate() * 100.0),
                all.mean_ms / 1000.0,
                all.tokens_per_second
                    .map_or("-".into(), |t| format!("{t:.1}")),
                all.cost_usd
            );
        } else {
            println!();
        }
    }
    // The winner of each domain.
    let mut best = Vec::new();
    for d in domains.iter().copied().chain(["all"]) {
        if let Some(s) = scores.iter().filter(|s| s.domain == d).max_by(|a, b| {
            a.rate()
                .total_cmp(&b.rate())
                .then(b.mean_ms.total_cmp(&a.mean_ms))
        }) {
            best.push(format!(
                "{d}: {}/{} {:.0}%",
                s.model,
                s.mode,
                s.rate() * 100.0
            ));
        }
    }
    if !best.is_empty() {
        println!("\nBest per domain: {}", best.join(" · "));
    }
}

async fn runs(runtime: &Runtime, limit: u32, json: bool) -> anyhow::Result<()> {
    let runs = runtime.store().eval_runs(limit).await?;
    if json {
        return print_json(&runs);
    }
    if runs.is_empty() {
        println!("No evaluation runs yet. Run one with `baton eval` (or `baton eval general --limit 10` for a quick look).");
        return Ok(());
    }
    for r in runs {
        println!(
            "{:>4}  {}  {:<9} {:>5} answers  sets {}  targets {}  ({})",
            r.id,
            r.started_at.format("%Y-%m-%d %H:%M"),
            r.status,
            r.results,
            r.sets.join(","),
            r.targets.join(","),
            r.machine
        );
    }
    Ok(())
}

async fn show(runtime: &Runtime, run: i64, failures: bool, json: bool) -> anyhow::Result<()> {
    let results = runtime.store().eval_results(run).await?;
    if results.is_empty() {
        bail!("evaluation run {run} has no results; list runs with `baton eval runs`");
    }
    let scores = baton_store::summarize_eval(&results);
    if json {
        return print_json(
            &serde_json::json!({ "run": run, "scores": scores, "results": results }),
        );
    }
    print_scores(&scores);
    if failures {
        println!();
        for r in results.iter().filter(|r| !r.passed) {
            let answer: String = r.answer.chars().take(160).collect();
            println!(
                "✗ {} {}/{} — {}{}\n    {}",
                r.item_id,
                r.model,
                r.mode,
                r.detail,
                r.error
                    .as_deref()
                    .map_or(String::new(), |e| format!(" ({e})")),
                answer.replace('\n', " ⏎ ")
            );
        }
    }
    Ok(())
}

/// `model` or `model/mode` (mode `single` when absent).
fn target_key(spec: &str) -> (String, String) {
    for mode in ["single", "fanout", "refine"] {
        if let Some(model) = spec.strip_suffix(&format!("/{mode}")) {
            return (model.to_owned(), mode.to_owned());
        }
    }
    (spec.to_owned(), "single".to_owned())
}

async fn compare(
    runtime: &Runtime,
    a: &str,
    b: &str,
    set: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let latest = runtime.store().latest_eval_results().await?;
    let pick = |key: &(String, String)| -> BTreeMap<(String, String), &EvalResult> {
        latest
            .iter()
            .filter(|r| r.model == key.0 && r.mode == key.1)
            .filter(|r| set.is_none_or(|s| r.set_name == s))
            .map(|r| ((r.set_name.clone(), r.item_id.clone()), r))
            .collect()
    };
    let (ka, kb) = (target_key(a), target_key(b));
    let (ra, rb) = (pick(&ka), pick(&kb));
    let mut pairs = Vec::new();
    let mut per_domain: BTreeMap<String, Vec<(bool, bool)>> = BTreeMap::new();
    for (key, x) in &ra {
        if let Some(y) = rb.get(key) {
            pairs.push((x.passed, y.passed));
            per_domain
                .entry(x.domain.clone())
                .or_default()
                .push((x.passed, y.passed));
        }
    }
    let diff = paired_difference(&pairs).with_context(|| {
        format!(
            "{a} and {b} have no question in common; evaluate both with `baton eval --models …`"
        )
    })?;
    if json {
        let domains: BTreeMap<_, _> = per_domain
            .iter()
            .filter_map(|(d, p)| Some((d.clone(), paired_difference(p)?)))
            .collect();
        return print_json(
            &serde_json::json!({"a": a, "b": b, "overall": diff, "domains": domains}),
        );
    }
    let line = |name: &str, d: &baton_eval::PairedDifference| {
        println!(
            "{name:<12} {:>+6.1} points (95% CI {:+.1} to {:+.1}) over {} questions; only {a}: {}, only {b}: {}{}",
            d.mean * 100.0,
            d.interval.low * 100.0,
            d.interval.high * 100.0,
            d.n,
            d.only_a,
            d.only_b,
            if d.significant() { "" } else { " — not significant" }
        );
    };
    println!("{a} minus {b}:");
    line("all", &diff);
    for (domain, p) in &per_domain {
        if let Some(d) = paired_difference(p) {
            line(domain, &d);
        }
    }
    Ok(())
}
