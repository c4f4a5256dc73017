//! `baton transcribe`, `baton listen`, `baton speak`: speech recognition through the
//! whisper.cpp worker and speech synthesis (Piper, espeak-ng as fallback).

use crate::commands::print_json;
use baton_runtime::{ListenOptions, Runtime, VoiceEvent};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// Options of `baton listen`.
#[derive(Debug, clap::Args)]
pub struct ListenArgs {
    /// Input device (see `--devices`) [default: the system's default input]
    #[arg(long)]
    pub device: Option<String>,
    /// List input devices and exit
    #[arg(long)]
    pub devices: bool,
    /// Stop after this many utterances [default: until Ctrl-C]
    #[arg(long, short = 'n', default_value_t = 0)]
    pub utterances: usize,
    /// Speech model [default: voice.stt_model]
    #[arg(long, short)]
    pub model: Option<String>,
    /// Spoken language (ISO 639-1) or `auto` [default: voice.language]
    #[arg(long, short)]
    pub language: Option<String>,
    /// Do not show partial text while speaking
    #[arg(long)]
    pub no_partials: bool,
}

/// Options of `baton speak`.
#[derive(Debug, clap::Args)]
pub struct SpeakArgs {
    /// The text; `-` or none reads standard input
    pub text: Vec<String>,
    /// Write a WAV file instead of playing it
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

fn language(arg: Option<String>) -> Option<String> {
    arg.filter(|l| l != "auto")
}

/// Runs `baton transcribe`.
pub async fn transcribe(
    runtime: &Runtime,
    file: PathBuf,
    model: Option<String>,
    lang: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let transcript = runtime
        .transcribe_file(&file, model.as_deref(), language(lang))
        .await?;
    if json {
        return print_json(&serde_json::json!({
            "text": transcript.text,
            "language": transcript.language,
            "segments": transcript.segments,
            "ms": started.elapsed().as_millis() as u64,
        }));
    }
    println!("{}", transcript.text);
    Ok(())
}

/// Runs `baton listen`: partial text on stderr while speaking, each utterance's final text
/// on stdout (one line each, or one JSON object with `--json`). Ctrl-C ends.
pub async fn listen(runtime: &Runtime, args: ListenArgs, json: bool) -> anyhow::Result<()> {
    if args.devices {
        let devices = tokio::task::spawn_blocking(baton_speech::Microphone::devices).await??;
        if json {
            return print_json(&devices);
        }
        for d in devices {
            println!("{d}");
        }
        return Ok(());
    }
    let ctrl_c = crate::commands::CtrlC::watch();
    let tty = std::io::stderr().is_terminal();
    let on_event = move |event: VoiceEvent| {
        let mut err = std::io::stderr().lock();
        match event {
            VoiceEvent::Listening(name) => {
                let _ = writeln!(err, "\x1b[2mListening on {name}; Ctrl-C ends.\x1b[0m");
            }
            VoiceEvent::Partial(text) if tty => {
                let _ = write!(err, "\r\x1b[2K\x1b[2m… {text}\x1b[0m");
                let _ = err.flush();
            }
            VoiceEvent::Partial(text) => {
                let _ = writeln!(err, "… {text}");
            }
            VoiceEvent::Final(transcript) => {
                if tty {
                    let _ = write!(err, "\r\x1b[2K");
                }
                drop(err);
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"text": transcript.text, "language": transcript.language, "segments": transcript.segments})
                    );
                } else {
                    println!("{}", transcript.text);
                }
            }
            VoiceEvent::Level(_) | VoiceEvent::SpeechStarted => {}
        }
    };
    let options = ListenOptions {
        device: args.device,
        utterances: args.utterances,
        model: args.model,
        language: language(args.language),
        partials: !args.no_partials,
    };
    let result = runtime.listen(options, &on_event, ctrl_c.token()).await;
    drop(ctrl_c);
    result?;
    Ok(())
}

/// Runs `baton speak`: plays the text, or writes it to a WAV file.
pub async fn speak(runtime: &Runtime, args: SpeakArgs) -> anyhow::Result<()> {
    let mut text = args.text.join(" ");
    if text.trim().is_empty() || text.trim() == "-" {
        text.clear();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
    }
    let choice = runtime.voice().await?;
    if choice.fallback {
        eprintln!("\x1b[2m{}\x1b[0m", choice.notice);
    }
    let audio = runtime.speak(&text).await?;
    match args.output {
        Some(path) => {
            baton_tts::write_wav(&path, &audio)?;
            eprintln!(
                "Wrote {} ({:.1} s of speech)",
                path.display(),
                audio.duration_secs()
            );
        }
        None => {
            let player = baton_tts::Player::new()?;
            player.play(audio)?;
            tokio::task::spawn_blocking(move || player.wait_until_done()).await?;
        }
    }
    Ok(())
}
