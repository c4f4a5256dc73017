//! `baton-fuzz`: runs fuzz campaigns over Baton's parsers and replays the inputs that once
//! broke them.
//!
//! ```text
//! baton-fuzz run [--cases 10000] [--seed N] [--time-limit 2] [--out DIR] [TARGET…]
//! baton-fuzz replay [DIR]
//! baton-fuzz list
//! ```
//!
//! A campaign runs each target in a child process, so a crash of native code or a hang
//! ends only the child; the parent reads which case was running, makes its input again
//! from the seed and writes it to `--out`, then goes on from the next case.

use anyhow::{bail, Context, Result};
use baton_fuzz::campaign::{self, CaseLimits, EXIT_HANG, EXIT_MEMORY, EXIT_PANIC};
use baton_fuzz::{find, Target, TARGETS};
use clap::{Parser, Subcommand};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: baton_fuzz::alloc::Counting = baton_fuzz::alloc::Counting;

/// A target stops after this many findings in one campaign.
const MAX_FINDINGS: usize = 10;

#[derive(Parser)]
#[command(name = "baton-fuzz", about = "Fuzz campaigns over Baton's parsers")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs a campaign on the named targets (all when none is named).
    Run {
        /// Cases per target.
        #[arg(long, default_value_t = 10_000)]
        cases: u64,
        /// The campaign's seed: the same seed makes the same inputs.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Seconds one case under 1 MB may take before it counts as a hang.
        #[arg(long, default_value_t = 2.0)]
        time_limit: f64,
        /// Where the inputs of findings are written (one folder per target).
        #[arg(long, default_value = "fuzz-findings")]
        out: PathBuf,
        /// Targets to run.
        targets: Vec<String>,
    },
    /// Replays every input under DIR/<target>/ (the checked-in regressions by default).
    Replay {
        /// The folder of inputs.
        dir: Option<PathBuf>,
        /// Seconds one input may take.
        #[arg(long, default_value_t = 2.0)]
        time_limit: f64,
    },
    /// Writes the input of one case of a campaign to a file (to look at a finding again).
    Input {
        /// The target.
        target: String,
        /// The campaign's seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The case number.
        #[arg(long)]
        case: u64,
        /// Where to write it.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Lists the targets.
    List,
    /// Runs cases FROM..CASES of one target in this process (used by `run`).
    #[command(hide = true)]
    Child {
        target: String,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        from: u64,
        #[arg(long)]
        cases: u64,
        #[arg(long)]
        time_limit: f64,
        #[arg(long)]
        progress: PathBuf,
    },
}

/// Stack of the thread cases run on: that of a tokio worker, where the app parses most
/// input, so input nested deep enough to overflow it is found here rather than in the app.
const CASE_STACK: usize = 2 << 20;

fn main() -> Result<()> {
    let cli = Cli::parse();
    std::thread::Builder::new()
        .name("fuzz-cases".into())
        .stack_size(CASE_STACK)
        .spawn(move || dispatch(cli))
        .context("starting the case thread")?
        .join()
        .unwrap_or_else(|_| bail!("the case thread panicked"))
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Run {
            cases,
            seed,
            time_limit,
            out,
            targets,
        } => run(cases, seed, time_limit, &out, &chosen(&targets)?),
        Cmd::Replay { dir, time_limit } => {
            replay(&dir.unwrap_or_else(baton_fuzz::regressions_dir), time_limit)
        }
        Cmd::Input {
            target,
            seed,
            case,
            out,
        } => {
            let target = chosen(&[target])?[0];
            let input = campaign::input_for(target, &(target.seeds)(), seed, case);
            std::fs::write(&out, input).with_context(|| format!("writing {}", out.display()))
        }
        Cmd::List => {
            for t in TARGETS {
                println!("{:<13} {}", t.name, t.about);
            }
            Ok(())
        }
        Cmd::Child {
            target,
            seed,
            from,
            cases,
            time_limit,
            progress,
        } => child(&target, seed, from, cases, time_limit, &progress),
    }
}

fn chosen(names: &[String]) -> Result<Vec<&'static Target>> {
    if names.is_empty() {
        return Ok(TARGETS.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            find(n).with_context(|| {
                let all: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
                format!("no target `{n}`; the targets are {}", all.join(", "))
            })
        })
        .collect()
}

fn limits(time_limit: f64) -> CaseLimits {
    CaseLimits {
        time: Duration::from_secs_f64(time_limit),
        ..CaseLimits::default()
    }
}

/// What a child reports on stdout when its cases all passed.
#[derive(Default)]
struct Summary {
    cases: u64,
    accepted: u64,
    slowest: Duration,
    slowest_case: u64,
    peak: usize,
}

fn run(cases: u64, seed: u64, time_limit: f64, out: &Path, targets: &[&Target]) -> Result<()> {
    let exe = std::env::current_exe().context("finding this program")?;
    let work = tempfile::tempdir().context("creating a work folder")?;
    println!(
        "{:<13} {:>7} {:>9} {:>9} {:>20} {:>9} {:>8}",
        "target", "cases", "accepted", "findings", "slowest ms (case)", "peak MiB", "time s"
    );
    let mut total_findings = 0;
    for target in targets {
        let started = Instant::now();
        let progress = work.path().join(format!("{}.progress", target.name));
        let mut summary = Summary::default();
        let mut findings = Vec::new();
        let mut from = 0;
        while from < cases && findings.len() < MAX_FINDINGS {
            std::fs::write(&progress, from.to_le_bytes())?;
            let mut proc = Command::new(&exe)
                .args(["child", target.name, "--seed", &seed.to_string()])
                .args(["--from", &from.to_string(), "--cases", &cases.to_string()])
                .args(["--time-limit", &time_limit.to_string()])
                .arg("--progress")
                .arg(&progress)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .context("starting a campaign process")?;
            let mut stdout = String::new();
            let mut stderr = String::new();
            if let Some(mut s) = proc.stdout.take() {
                s.read_to_string(&mut stdout)?;
            }
            if let Some(mut s) = proc.stderr.take() {
                s.read_to_string(&mut stderr)?;
            }
            let status = proc.wait()?;
            let case = u64::from_le_bytes(
                std::fs::read(&progress)?
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .unwrap_or([0; 8]),
            );
            if status.success() {
                let mut fields = stdout
                    .split_whitespace()
                    .filter_map(|f| f.parse::<u64>().ok());
                summary.cases += fields.next().unwrap_or(0);
                let slowest = Duration::from_micros(fields.next().unwrap_or(0));
                summary.peak = summary.peak.max(fields.next().unwrap_or(0) as usize);
                summary.accepted += fields.next().unwrap_or(0);
                let slowest_case = fields.next().unwrap_or(0);
                if slowest > summary.slowest {
                    (summary.slowest, summary.slowest_case) = (slowest, slowest_case);
                }
                break;
            }
            summary.cases += case + 1 - from;
            let kind = match (status.code(), status.signal()) {
                (Some(EXIT_PANIC), _) => "panic".to_string(),
                (Some(EXIT_HANG), _) => "hang".to_string(),
                (Some(EXIT_MEMORY), _) => "memory".to_string(),
                (_, Some(sig)) => format!("signal-{sig}"),
                (code, _) => format!("exit-{}", code.unwrap_or(-1)),
            };
            let seeds = (target.seeds)();
            let input = campaign::input_for(target, &seeds, seed, case);
            let dir = out.join(target.name);
            std::fs::create_dir_all(&dir)?;
            let file = dir.join(format!("{kind}-seed{seed}-case{case}.bin"));
            std::fs::write(&file, &input)?;
            let why = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or(&kind);
            println!(
                "  finding: {} case {case}: {why}\n    input: {}",
                target.name,
                file.display()
            );
            findings.push(file);
            from = case + 1;
        }
        total_findings += findings.len();
        println!(
            "{:<13} {:>7} {:>9} {:>9} {:>20} {:>9.1} {:>8.1}",
            target.name,
            summary.cases,
            summary.accepted,
            findings.len(),
            format!(
                "{:.1} ({})",
                summary.slowest.as_secs_f64() * 1000.0,
                summary.slowest_case
            ),
            summary.peak as f64 / f64::from(1 << 20),
            started.elapsed().as_secs_f64()
        );
    }
    if total_findings > 0 {
        bail!(
            "{total_findings} finding(s); their inputs are under {}. Fix each, then move its input to {}/<target>/ so `make test` replays it",
            out.display(),
            baton_fuzz::regressions_dir().display()
        );
    }
    Ok(())
}

static CHILD_TARGET: OnceLock<String> = OnceLock::new();
static CHILD_CASE: AtomicU64 = AtomicU64::new(0);

fn describe_case() -> String {
    format!(
        "case {} of {}",
        CHILD_CASE.load(Ordering::Relaxed),
        CHILD_TARGET.get().map(String::as_str).unwrap_or("?")
    )
}

fn child(
    name: &str,
    seed: u64,
    from: u64,
    cases: u64,
    time_limit: f64,
    progress: &Path,
) -> Result<()> {
    let target = find(name).with_context(|| format!("no target `{name}`"))?;
    let _ = CHILD_TARGET.set(name.to_string());
    campaign::install(describe_case);
    let limits = limits(time_limit);
    let scratch = tempfile::tempdir().context("creating a scratch folder")?;
    let progress = std::fs::OpenOptions::new()
        .write(true)
        .open(progress)
        .context("opening the progress file")?;
    let seeds = (target.seeds)();
    let mut summary = Summary::default();
    for case in from..cases {
        CHILD_CASE.store(case, Ordering::Relaxed);
        progress.write_at(&case.to_le_bytes(), 0)?;
        let input = campaign::input_for(target, &seeds, seed, case);
        match campaign::run_case(target, &input, scratch.path(), &limits) {
            Ok(cost) => {
                summary.cases += 1;
                summary.accepted += u64::from(cost.accepted);
                if cost.time > summary.slowest {
                    summary.slowest = cost.time;
                    summary.slowest_case = case;
                }
                summary.peak = summary.peak.max(cost.memory);
            }
            Err(failure) => {
                eprintln!("{failure}");
                std::process::exit(failure.exit_code());
            }
        }
    }
    println!(
        "{} {} {} {} {}",
        summary.cases,
        summary.slowest.as_micros(),
        summary.peak,
        summary.accepted,
        summary.slowest_case
    );
    Ok(())
}

static REPLAYING: OnceLock<std::sync::Mutex<String>> = OnceLock::new();

fn describe_replay() -> String {
    REPLAYING
        .get()
        .and_then(|m| m.lock().ok().map(|s| s.clone()))
        .unwrap_or_default()
}

fn replay(dir: &Path, time_limit: f64) -> Result<()> {
    campaign::install(describe_replay);
    let limits = limits(time_limit);
    let scratch = tempfile::tempdir().context("creating a scratch folder")?;
    let current = REPLAYING.get_or_init(Default::default);
    let mut failed = 0;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries.into_iter().filter(|e| e.path().is_dir()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let target = find(&name).with_context(|| {
            format!(
                "{} is not named after a target (see `baton-fuzz list`)",
                entry.path().display()
            )
        })?;
        let mut inputs: Vec<_> = std::fs::read_dir(entry.path())?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        inputs.sort();
        let mut slowest = Duration::ZERO;
        for path in &inputs {
            if let Ok(mut c) = current.lock() {
                *c = path.display().to_string();
            }
            let data = std::fs::read(path)?;
            match campaign::run_case(target, &data, scratch.path(), &limits) {
                Ok(cost) => slowest = slowest.max(cost.time),
                Err(f) => {
                    failed += 1;
                    println!("FAILED {}: {f}", path.display());
                }
            }
        }
        println!(
            "{name:<13} {:>3} input(s) replayed, slowest {:.1} ms",
            inputs.len(),
            slowest.as_secs_f64() * 1000.0
        );
    }
    if failed > 0 {
        bail!("{failed} regression input(s) fail again");
    }
    Ok(())
}
