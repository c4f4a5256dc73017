//! `baton-stt-worker`: speech to text with whisper.cpp, in its own process (it links
//! `whisper-rs`, whose ggml must never meet llama.cpp's in one binary).
//!
//! `--serve` speaks the JSON-lines protocol of `baton_stt::protocol` on stdin/stdout: that
//! is how Baton runs it (supervised by `baton_stt::SttEngine`). As a command-line tool,
//!
//! ```text
//! baton-stt-worker --model ggml-base.bin --transcribe speech.wav [more.wav …] [--language en|auto]
//!                  [--threads N] [--window fitted|full] [--flash-attn] [--draft] [--json]
//! ```
//!
//! prints each file's transcript (or, with `--json`, one JSON object per line with the
//! segments and their times): the in-process reference `baton bench stt` compares the served
//! path and its configurations with; the model is loaded once for all files. WAV files at any rate and channel count are mixed to mono and resampled to
//! 16 kHz. Errors go to stderr and name the file and what to do; the exit status is 1 (2
//! for bad arguments). whisper.cpp's own log lines are dropped unless `--verbose`.

#![warn(missing_docs)]

mod audio;
mod draft;
mod model;
mod serve;
mod transcribe;

use anyhow::{bail, Result};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "baton-stt-worker",
    version,
    about = "Speech to text with whisper.cpp"
)]
struct Args {
    /// Serve the JSON-lines protocol on stdin/stdout (how Baton runs the worker).
    #[arg(long, conflicts_with_all = ["model", "transcribe"])]
    serve: bool,
    /// whisper.cpp model file (ggml-*.bin).
    #[arg(long, value_name = "PATH", required_unless_present = "serve")]
    model: Option<PathBuf>,
    /// WAV files to transcribe.
    #[arg(long, value_name = "FILE.wav", num_args = 1..)]
    transcribe: Vec<PathBuf>,
    /// Spoken language (ISO 639-1 code) or `auto` to detect it.
    #[arg(long, default_value = "en")]
    language: String,
    /// Decode as a quick draft, the way partial text is decoded while someone speaks.
    #[arg(long)]
    draft: bool,
    /// How much of whisper's 30 s window the encoder sees: the audio there is plus a margin
    /// (checked, and decoded again in full when the text looks cut short), or all of it.
    #[arg(long, value_enum, default_value_t = transcribe::Window::Fitted)]
    window: transcribe::Window,
    /// Use flash attention.
    #[arg(long)]
    flash_attn: bool,
    /// CPU threads (default: available cores, at most 4).
    #[arg(long)]
    threads: Option<usize>,
    /// Print JSON (text, language, segments with times, timings) instead of plain text.
    #[arg(long)]
    json: bool,
    /// Show whisper.cpp's log on stderr.
    #[arg(long, short)]
    verbose: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    if args.serve {
        if !args.verbose {
            whisper_rs::install_logging_hooks();
        }
        return serve::run();
    }
    let model = args
        .model
        .as_ref()
        .expect("clap requires --model without --serve");
    if args.transcribe.is_empty() {
        bail!("nothing to do: pass --transcribe FILE.wav");
    }
    let options = transcribe::Options {
        language: transcribe::parse_language(&args.language)?,
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(4))),
        window: args.window,
        draft: args.draft,
        abort: None,
    };
    if !args.verbose {
        whisper_rs::install_logging_hooks();
    }
    // Read the audio first: it is cheap and its errors should not wait for a model load.
    let audio = args
        .transcribe
        .iter()
        .map(|wav| audio::load_wav(wav))
        .collect::<Result<Vec<_>>>()?;
    let started = Instant::now();
    let ctx = model::load(model, args.flash_attn)?;
    let load_ms = started.elapsed().as_millis();
    for (wav, samples) in args.transcribe.iter().zip(&audio) {
        let started = Instant::now();
        let transcript = transcribe::transcribe(&ctx, samples, &options)
            .map_err(|e| e.context(format!("{}", wav.display())))?;
        let transcribe_ms = started.elapsed().as_millis();
        if args.json {
            let out = serde_json::json!({
                "file": wav,
                "text": transcript.text,
                "language": transcript.language,
                "segments": transcript.segments,
                "audio_ms": samples.len() as u64 * 1000 / u64::from(audio::WHISPER_RATE),
                "audio_ctx": transcript.audio_ctx,
                "refit": transcript.refit,
                "load_ms": load_ms,
                "transcribe_ms": transcribe_ms,
                "threads": options.threads,
            });
            println!("{out}");
        } else {
            println!("{}", transcript.text);
        }
    }
    Ok(())
}
