//! `baton bench stt`: speech recognition speed and accuracy.
//!
//! 1. **Configurations side by side.** Fourteen sentences (one word to 34), each spoken by
//!    the installed voice (Piper) and by espeak-ng, are transcribed by whisper.cpp in one
//!    process (the worker's command-line mode) under each configuration: model, window
//!    (the full 30 s one or one fitted to the audio) and flash attention. Each row has the
//!    word error rate over all 28 recordings and the decode time of the 4–6.5 s ones.
//! 2. **The served path**, as the app and `baton listen` use it: the audio of a 5–6 s
//!    sentence is pushed to the supervised worker as fast as a person speaks it, with
//!    partial text asked for again as soon as the last one came; then the utterance ends.
//!    Printed: how far behind the speaker the partial text was, and the time from the end
//!    of speech to the final text.

use crate::commands::print_json;
use anyhow::Context;
use baton_runtime::Runtime;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Options of `baton bench stt`.
#[derive(Debug, clap::Args)]
pub struct BenchSttArgs {
    /// Speech model of the served path [default: voice.stt_model]
    #[arg(long, short)]
    pub model: Option<String>,
    /// Timed runs of the served path
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Only the served path (skip the configurations, which take a few minutes)
    #[arg(long)]
    pub served_only: bool,
}

/// What is said, shortest first; numbers are spelled out so that the reference is
/// unambiguous.
const SENTENCES: [&str; 14] = [
    "Open the settings.",
    "What time is it?",
    "Stop the music.",
    "Turn on dark mode.",
    "Send the report to Maria before lunch.",
    "Remind me to call the dentist tomorrow afternoon.",
    "Please summarize the last three emails from my manager.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Tomorrow morning I will take the early train to the city, visit my grandmother, and come back before dinner.",
    "Could you find the document about the budget meeting and read me the part about travel costs?",
    "When you get a chance, write a short note to the team saying that the release moves to next Thursday because the tests are still failing.",
    "Our garden has tomatoes, beans, carrots and a small apple tree that my father planted many years ago when we first moved into this house.",
    "The weather service expects heavy rain over the northern hills tonight, so the mountain road will be closed until the morning, and drivers should take the coast road instead.",
    "I would like to book a table for four people at the Italian restaurant on Main Street, preferably near the window, for seven thirty on Saturday evening, and please ask whether they have vegetarian dishes.",
];

/// The sentence of the served path (about 5.7 s).
const SERVED_SENTENCE: usize = 8;

/// Silence the utterance detector waits for before it ends an utterance
/// (`baton_speech::SegmenterConfig::end_silence_ms`).
const END_SILENCE: Duration = Duration::from_millis(600);

/// One configuration of the side-by-side table.
struct Config {
    label: &'static str,
    model: &'static str,
    window: &'static str,
    flash_attn: bool,
}

const CONFIGS: [Config; 5] = [
    Config {
        label: "base f16, full 30 s window (before)",
        model: "whisper-base-f16",
        window: "full",
        flash_attn: false,
    },
    Config {
        label: "base f16, fitted window",
        model: "whisper-base-f16",
        window: "fitted",
        flash_attn: false,
    },
    Config {
        label: "base q8_0, fitted window (default)",
        model: "whisper-base",
        window: "fitted",
        flash_attn: false,
    },
    Config {
        label: "base q8_0, fitted, flash attention",
        model: "whisper-base",
        window: "fitted",
        flash_attn: true,
    },
    Config {
        label: "tiny.en f16, fitted window",
        model: "whisper-tiny-en",
        window: "fitted",
        flash_attn: false,
    },
];

/// Words for scoring: lower case, punctuation (but apostrophes) and hyphens as spaces.
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Word-level edit distance (substitutions, insertions, deletions) from `reference` to
/// `heard`.
fn word_errors(reference: &[String], heard: &[String]) -> usize {
    baton_vision::metrics::edit_distance(reference, heard)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One recording of the sentence set.
struct Recording {
    sentence: usize,
    voice: &'static str,
    path: PathBuf,
    seconds: f64,
}

/// Speaks every sentence with the installed voice and with espeak-ng into `dir`.
async fn record_sentences(runtime: &Runtime, dir: &Path) -> anyhow::Result<Vec<Recording>> {
    let espeak = baton_tts::EspeakVoice::new("en-us");
    let mut recordings = Vec::new();
    for (i, sentence) in SENTENCES.iter().enumerate() {
        let spoken = [
            ("voice", runtime.speak(sentence).await?),
            (
                "espeak",
                espeak
                    .synthesize(sentence)
                    .context("espeak-ng is needed for the sentence set")?,
            ),
        ];
        for (voice, audio) in spoken {
            let path = dir.join(format!("{voice}-{i:02}.wav"));
            baton_tts::write_wav(&path, &audio)?;
            recordings.push(Recording {
                sentence: i,
                voice,
                seconds: audio.duration_secs(),
                path,
            });
        }
    }
    Ok(recordings)
}

/// One configuration's figures.
#[derive(serde::Serialize)]
struct ConfigResult {
    label: &'static str,
    model: &'static str,
    window: &'static str,
    flash_attn: bool,
    word_error_rate: f64,
    /// Median decode time of the recordings 4 to 6.5 s long.
    five_second_ms: f64,
    /// The slowest recording's decode time.
    max_ms: f64,
    /// Decode time over audio time, all recordings.
    real_time_factor: f64,
    /// Recordings whose fitted window was not trusted and decoded again.
    redecoded: usize,
    /// Recordings with any error, as "voice-NN: heard".
    misheard: Vec<String>,
}

/// Transcribes every recording under `config` with the worker's command-line mode.
async fn run_config(
    config: &Config,
    model_path: &str,
    threads: u32,
    recordings: &[Recording],
) -> anyhow::Result<ConfigResult> {
    let worker = baton_stt::find_worker(None)?;
    let mut command = tokio::process::Command::new(&worker);
    command
        .arg("--model")
        .arg(model_path)
        .args(["--language", "en", "--json", "--threads"])
        .arg(threads.to_string())
        .args(["--window", config.window]);
    if config.flash_attn {
        command.arg("--flash-attn");
    }
    command.arg("--transcribe");
    command.args(recordings.iter().map(|r| &r.path));
    let out = command
        .output()
        .await
        .context("cannot run the speech worker directly")?;
    anyhow::ensure!(
        out.status.success(),
        "{}: {}",
        config.label,
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut errors, mut reference_words) = (0, 0);
    let (mut five, mut all_ms, mut audio_ms) = (Vec::new(), Vec::new(), 0.0);
    let (mut redecoded, mut misheard) = (0, Vec::new());
    let lines = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<serde_json::Value> = lines
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    anyhow::ensure!(
        rows.len() == recordings.len(),
        "the worker skipped recordings"
    );
    for (row, recording) in rows.iter().zip(recordings) {
        let heard = row["text"].as_str().unwrap_or_default();
        let reference = words(SENTENCES[recording.sentence]);
        let e = word_errors(&reference, &words(heard));
        errors += e;
        reference_words += reference.len();
        if e > 0 {
            misheard.push(format!(
                "{}-{:02}: {heard}",
                recording.voice, recording.sentence
            ));
        }
        let ms = row["transcribe_ms"].as_f64().unwrap_or(f64::NAN);
        if (4.0..=6.5).contains(&recording.seconds) {
            five.push(ms);
        }
        all_ms.push(ms);
        audio_ms += recording.seconds * 1000.0;
        redecoded += usize::from(!row["refit"].is_null());
    }
    Ok(ConfigResult {
        label: config.label,
        model: config.model,
        window: config.window,
        flash_attn: config.flash_attn,
        word_error_rate: errors as f64 / reference_words.max(1) as f64,
        five_second_ms: median(five),
        max_ms: all_ms.iter().copied().fold(0.0, f64::max),
        real_time_factor: all_ms.iter().sum::<f64>() / audio_ms,
        redecoded,
        misheard,
    })
}

/// The served path's figures.
#[derive(serde::Serialize)]
struct Served {
    model: String,
    audio_ms: f64,
    /// Median over runs: the end of the utterance was detected → the final text.
    end_detected_to_final_ms: f64,
    /// The same plus the silence the detector waits for: the last word → the final text.
    last_word_to_final_ms: f64,
    /// How far behind the speaker partial text was when it appeared: median and worst.
    partial_behind_median_ms: f64,
    partial_behind_max_ms: f64,
    /// Partial texts shown during one utterance (median over runs).
    partials: f64,
    partial_text: String,
    text: String,
}

/// Speaks `audio` into the served worker at the pace of a speaker, asking for partial
/// text again whenever the last one came, then ends the utterance after the detector's
/// silence.
async fn run_served(
    runtime: &Runtime,
    name: &str,
    audio: &[f32],
    runs: usize,
) -> anyhow::Result<Served> {
    let engine = runtime.recognizer(Some(name)).await?;
    engine.transcribe_samples(audio, Some("en".into())).await?; // starts the worker and loads the model
    let rate = 16_000.0;
    let (mut finals, mut behind, mut counts) = (Vec::new(), Vec::new(), Vec::new());
    let (mut text, mut partial_text) = (String::new(), String::new());
    for _ in 0..runs {
        let mut utterance = engine.begin().await?;
        let started = Instant::now();
        let mut pushed = 0usize;
        let mut shown = 0usize;
        while pushed < audio.len() {
            let spoken = ((started.elapsed().as_secs_f64() * rate) as usize).min(audio.len());
            if spoken - pushed < 1_600 && spoken < audio.len() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            utterance.push(&audio[pushed..spoken]).await?;
            pushed = spoken;
            let text = utterance.partial(Some("en".into())).await?;
            let said_by = Duration::from_secs_f64(pushed as f64 / rate);
            behind.push((started.elapsed().saturating_sub(said_by)).as_secs_f64() * 1000.0);
            if !text.is_empty() {
                partial_text = text;
                shown += 1;
            }
        }
        counts.push(shown as f64);
        // The speaker stopped when the audio ran out; the detector ends the utterance
        // after its silence, at the earliest once the last partial decode is done.
        let spoken_until = Duration::from_secs_f64(audio.len() as f64 / rate);
        let detected = spoken_until + END_SILENCE;
        if let Some(wait) = detected.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let finishing = Instant::now();
        let late = started.elapsed().saturating_sub(detected);
        let t = utterance.finish(Some("en".into())).await?;
        finals.push((finishing.elapsed() + late).as_secs_f64() * 1000.0);
        text = t.text;
    }
    let end_detected_to_final_ms = median(finals);
    Ok(Served {
        model: name.to_owned(),
        audio_ms: audio.len() as f64 / rate * 1000.0,
        end_detected_to_final_ms,
        last_word_to_final_ms: end_detected_to_final_ms + END_SILENCE.as_secs_f64() * 1000.0,
        partial_behind_median_ms: median(behind.clone()),
        partial_behind_max_ms: behind.iter().copied().fold(0.0, f64::max),
        partials: median(counts),
        partial_text,
        text,
    })
}

/// Runs the benchmark.
pub async fn run(runtime: &Runtime, args: BenchSttArgs, json: bool) -> anyhow::Result<()> {
    let runs = args.runs.max(1);
    let name = args
        .model
        .clone()
        .unwrap_or_else(|| runtime.config().voice.stt_model.clone());
    let threads = runtime.config().voice.threads;
    let dir = tempfile::tempdir()?;
    eprintln!("Speaking {} sentences with two voices…", SENTENCES.len());
    let recordings = record_sentences(runtime, dir.path()).await?;

    let mut configs = Vec::new();
    let mut skipped = Vec::new();
    if !args.served_only {
        for config in &CONFIGS {
            let installed = match runtime.model(config.model).await {
                Ok(record) if Path::new(&record.path).is_file() => Some(record.path),
                _ => None,
            };
            let Some(path) = installed else {
                skipped.push(format!(
                    "{}: `baton models fetch {}` to include it",
                    config.label, config.model
                ));
                continue;
            };
            eprintln!(
                "Transcribing {} recordings: {}…",
                recordings.len(),
                config.label
            );
            configs.push(run_config(config, &path, threads, &recordings).await?);
        }
    }

    let served_recording = recordings
        .iter()
        .find(|r| r.sentence == SERVED_SENTENCE && r.voice == "voice")
        .expect("every sentence is recorded");
    let audio = baton_speech::to_16k_mono(&baton_speech::decode_file(&served_recording.path)?);
    eprintln!(
        "Speaking {:.2} s into the served worker ({name}), {runs} runs…",
        audio.duration_secs()
    );
    let served = run_served(runtime, &name, &audio.samples, runs).await?;

    if json {
        return print_json(&serde_json::json!({
            "threads": threads,
            "recordings": recordings.len(),
            "configurations": configs,
            "not_installed": skipped,
            "served": served,
        }));
    }
    println!(
        "{} recordings (14 sentences, Piper and espeak-ng voices), {threads} threads",
        recordings.len()
    );
    println!(
        "{:<38} {:>6} {:>12} {:>9} {:>6} {:>10}",
        "configuration", "WER", "5 s decode", "slowest", "RTF", "re-decoded"
    );
    for c in &configs {
        println!(
            "{:<38} {:>5.1}% {:>9.0} ms {:>6.0} ms {:>6.3} {:>10}",
            c.label,
            c.word_error_rate * 100.0,
            c.five_second_ms,
            c.max_ms,
            c.real_time_factor,
            c.redecoded
        );
    }
    for s in &skipped {
        println!("not installed: {s}");
    }
    if let (Some(before), Some(default)) = (configs.first(), configs.get(2)) {
        println!(
            "default / before        5 s decode {:.3}, WER {:.1}% vs {:.1}%",
            default.five_second_ms / before.five_second_ms,
            default.word_error_rate * 100.0,
            before.word_error_rate * 100.0
        );
    }
    println!();
    println!(
        "served {} ({:.2} s spoken in real time, median of {runs} runs)",
        served.model,
        served.audio_ms / 1000.0
    );
    println!(
        "end detected → final    {:.0} ms",
        served.end_detected_to_final_ms
    );
    println!(
        "last word → final       {:.0} ms (with the detector's {} ms of silence)",
        served.last_word_to_final_ms,
        END_SILENCE.as_millis()
    );
    println!(
        "partial text behind     median {:.0} ms, worst {:.0} ms ({:.0} partials per utterance)",
        served.partial_behind_median_ms, served.partial_behind_max_ms, served.partials
    );
    println!("partial heard           {}", served.partial_text);
    println!("heard                   {}", served.text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_errors_count_substitutions_insertions_and_deletions() {
        let r = words("Send the report to Maria, before lunch.");
        assert_eq!(
            word_errors(&r, &words("send the report to maria before lunch")),
            0
        );
        assert_eq!(
            word_errors(&r, &words("and the report to Maria before lunch")),
            1
        );
        assert_eq!(
            word_errors(&r, &words("send report to Maria before lunch")),
            1
        );
        assert_eq!(
            word_errors(&r, &words("send the report to Maria before the lunch")),
            1
        );
        assert_eq!(word_errors(&r, &[]), r.len());
        assert_eq!(word_errors(&[], &r), r.len());
    }

    #[test]
    fn words_ignore_case_punctuation_and_hyphens_but_keep_apostrophes() {
        assert_eq!(words("E-mails, don't!"), ["e", "mails", "don't"]);
    }
}
