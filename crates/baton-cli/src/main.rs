//! The `baton` command-line interface: the same engine as the desktop app, for scripts and
//! headless use.

mod cli;
mod commands;
mod logging;

use baton_runtime::{Config, Paths, Runtime};
use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let paths = Paths::resolve(cli.data_dir.as_deref(), cli.config.as_deref());
    // Logging uses the config's settings when the file is valid; a broken file is reported
    // by the command itself below.
    let log_config = Config::load(&paths.config_file).unwrap_or_default();
    let _guard = logging::init(
        &paths.log_dir(),
        &log_config.logging.level,
        log_config.logging.max_files,
        cli.verbose,
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, paths)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "command failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// OCR tasks run Tesseract in this process: its OpenMP threads must be limited before
/// start (see `baton_vision::ocr::openmp_limit_set`).
fn single_threaded_openmp() {
    if let Some(err) = baton_vision::ocr::reexec_with_single_threaded_openmp() {
        tracing::warn!(error = %err, "could not re-execute with OMP_THREAD_LIMIT=1; OCR may be slow");
    }
}

/// Opens the runtime on the queue named by `--queue` (or BATON_QUEUE) when one is, else on
/// the config's.
async fn open_with_queue(paths: Paths, queue: Option<&str>) -> anyhow::Result<Runtime> {
    let mut runtime = Runtime::open(paths).await?;
    if let Some(url) = queue {
        runtime.use_queue(url).await?;
    }
    Ok(runtime)
}

async fn run(cli: Cli, paths: Paths) -> anyhow::Result<()> {
    let json = cli.json;
    match cli.command {
        Command::Config(cmd) => commands::config::run(cmd, &paths, json),
        Command::Bench(cli::BenchCommand::Llm(args)) => {
            let runtime = Runtime::open(paths).await?;
            let result = commands::bench_llm::run(args, &runtime, json).await;
            runtime.close().await;
            result
        }
        Command::Bench(cli::BenchCommand::Stt(args)) => {
            let runtime = Runtime::open(paths).await?;
            let result = commands::bench_stt::run(&runtime, args, json).await;
            runtime.close().await;
            result
        }
        Command::Bench(cli::BenchCommand::Api(args)) => {
            let runtime = Runtime::open(paths).await?;
            let result = commands::bench_api::run(args, &runtime, json).await;
            runtime.close().await;
            result
        }
        Command::Bench(cmd) => commands::bench::run(cmd, json).await,
        Command::Ocr(args) => commands::vision::ocr(args, json),
        Command::Elements(args) => commands::vision::elements(args, json),
        Command::Models(cmd) => {
            let runtime = Runtime::open(paths).await?;
            let result = commands::models::run(cmd, &runtime, json).await;
            runtime.close().await;
            result
        }
        Command::Doctor => {
            let runtime = Runtime::open(paths).await?;
            let result = commands::models::doctor(&runtime, json).await;
            runtime.close().await;
            result
        }
        Command::Chat(args) => {
            let runtime = Runtime::open(paths).await?;
            let result = commands::chat::run(args, &runtime, json).await;
            runtime.close().await;
            result
        }
        Command::Engines(cmd) => {
            let runtime = Runtime::open(paths).await?;
            let result = commands::engines::run(cmd, &runtime, json).await;
            runtime.close().await;
            result
        }
        Command::Transcribe {
            file,
            model,
            language,
        } => {
            let runtime = Runtime::open(paths).await?;
            let result = commands::voice::transcribe(&runtime, file, model, language, json).await;
            runtime.close().await;
            result
        }
        Command::Listen(args) => {
            let runtime = Runtime::open(paths).await?;
            let result = commands::voice::listen(&runtime, args, json).await;
            runtime.close().await;
            result
        }
        Command::Speak(args) => {
            let runtime = Runtime::open(paths).await?;
            let result = commands::voice::speak(&runtime, args).await;
            runtime.close().await;
            result
        }
        Command::Eval(args) => {
            let runtime = Runtime::open(paths).await?;
            let result = commands::eval::run(args, &runtime, json).await;
            runtime.close().await;
            result
        }
        Command::Stats => {
            let runtime = Runtime::open(paths).await?;
            let result = commands::engines::stats(&runtime, json).await;
            runtime.close().await;
            result
        }
        Command::Rate { message, rating } => {
            let runtime = Runtime::open(paths).await?;
            let result = commands::engines::rate(&runtime, message, &rating).await;
            runtime.close().await;
            result
        }
        Command::Serve(args) if args.show_token || args.rotate_token => {
            let runtime = Runtime::open(paths).await?;
            let result = commands::serve::token(&args, &runtime, json).await;
            runtime.close().await;
            result
        }
        Command::Serve(args) => {
            let runtime = open_with_queue(paths, cli.queue.as_deref()).await?;
            commands::serve::run(args, runtime).await
        }
        Command::Audit(args) => {
            let runtime = Runtime::open(paths).await?;
            let result = commands::audit::run(args, &runtime, json).await;
            runtime.close().await;
            result
        }
        Command::Route { prompt } => {
            let runtime = Runtime::open(paths).await?;
            let result = runtime.route(&prompt.join(" ")).await;
            runtime.close().await;
            let decision = result?;
            if json {
                return commands::print_json(&decision);
            }
            println!("{}", decision.model);
            for reason in &decision.reasons {
                println!("  {reason}");
            }
            for s in &decision.ranked {
                println!("  · {} — {}", s.model, s.why);
            }
            Ok(())
        }
        Command::Search(args) => {
            let runtime = Runtime::open(paths).await?;
            let result = commands::memory::search(args, &runtime, json).await;
            runtime.close().await;
            result
        }
        Command::Memory(cmd) => {
            let runtime = Runtime::open(paths).await?;
            let result = commands::memory::memory(cmd, &runtime, json).await;
            runtime.close().await;
            result
        }
        Command::Docs(cmd) => {
            let runtime = Runtime::open(paths).await?;
            let result = commands::memory::docs(cmd, &runtime, json).await;
            runtime.close().await;
            result
        }
        Command::Sessions(cmd) => {
            let runtime = Runtime::open(paths).await?;
            let result = commands::sessions::run(cmd, &runtime, json).await;
            runtime.close().await;
            result
        }
        Command::Tasks(cmd) => {
            single_threaded_openmp();
            let runtime = open_with_queue(paths, cli.queue.as_deref()).await?;
            let result = commands::tasks::tasks(cmd, &runtime, json).await;
            runtime.close().await;
            result
        }
        Command::Templates(cmd) => {
            single_threaded_openmp();
            let runtime = open_with_queue(paths, cli.queue.as_deref()).await?;
            let result = commands::tasks::templates(cmd, &runtime, json).await;
            runtime.close().await;
            result
        }
        Command::Schedules(cmd) => {
            let runtime = open_with_queue(paths, cli.queue.as_deref()).await?;
            let result = commands::tasks::schedules(cmd, &runtime, json).await;
            runtime.close().await;
            result
        }
        Command::Worker(args) => {
            single_threaded_openmp();
            let runtime = open_with_queue(paths, cli.queue.as_deref()).await?;
            let result = commands::tasks::worker(args, &runtime, json).await;
            runtime.close().await;
            result
        }
    }
}
