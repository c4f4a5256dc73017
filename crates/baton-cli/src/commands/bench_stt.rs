//! `baton bench stt`: speech recognition speed through the supervised worker (what the app
//! and `baton listen` use) against whisper.cpp run directly in one process, on the same
//! utterance in the same run.

use crate::commands::print_json;
use anyhow::Context;
use baton_runtime::Runtime;
use std::time::Instant;

/// Options of `baton bench stt`.
#[derive(Debug, clap::Args)]
pub struct BenchSttArgs {
    /// Speech model [default: voice.stt_model]
    #[arg(long, short)]
    pub model: Option<String>,
    /// Timed runs of each path
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

const UTTERANCE: &str = "Tomorrow morning I will take the early train to the city, visit my grandmother, and come back before dinner.";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs the benchmark.
pub async fn run(runtime: &Runtime, args: BenchSttArgs, json: bool) -> anyhow::Result<()> {
    let runs = args.runs.max(1);
    let name = args
        .model
        .clone()
        .unwrap_or_else(|| runtime.config().voice.stt_model.clone());
    let record = runtime.model(&name).await?;
    let dir = tempfile::tempdir()?;
    let wav = dir.path().join("utterance.wav");
    // A natural voice when one is installed (espeak-ng otherwise).
    let speech = runtime.speak(UTTERANCE).await?;
    baton_tts::write_wav(&wav, &speech)?;
    let audio = baton_speech::to_16k_mono(&baton_speech::decode_file(&wav)?);
    let audio_ms = audio.duration_secs() * 1000.0;
    let threads = runtime.config().voice.threads;
    eprintln!(
        "Utterance: {:.2} s of speech; model {name}; {threads} threads; {runs} runs each",
        audio_ms / 1000.0
    );

    // Served: the audio is pushed as it would be while the person speaks; the clock runs
    // from the end of speech (finish) to the final text.
    let engine = runtime.recognizer(Some(&name)).await?;
    engine
        .transcribe_samples(&audio.samples, Some("en".into()))
        .await?; // starts the worker and loads the model
    let mut served = Vec::new();
    let mut partials = Vec::new();
    let mut text = String::new();
    let mut partial_text = String::new();
    for _ in 0..runs {
        let mut utterance = engine.begin().await?;
        utterance.push(&audio.samples).await?;
        // The partial text shown while the person speaks: a draft decode of the audio so far.
        let started = Instant::now();
        partial_text = utterance.partial(Some("en".into())).await?;
        partials.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        let t = utterance.finish(Some("en".into())).await?;
        served.push(started.elapsed().as_secs_f64() * 1000.0);
        text = t.text;
    }

    // Direct: whisper.cpp in one process (the worker's command-line mode), decode time only.
    let worker = baton_stt::find_worker(None)?;
    let mut direct = Vec::new();
    for _ in 0..runs {
        let out = tokio::process::Command::new(&worker)
            .arg("--model")
            .arg(&record.path)
            .arg("--transcribe")
            .arg(&wav)
            .args(["--language", "en", "--json", "--threads"])
            .arg(threads.to_string())
            .output()
            .await
            .context("cannot run the speech worker directly")?;
        anyhow::ensure!(
            out.status.success(),
            "direct run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        direct.push(v["transcribe_ms"].as_f64().unwrap_or(f64::NAN));
    }
    let (served_ms, direct_ms) = (median(served), median(direct));
    let partial_ms = median(partials);
    let report = serde_json::json!({
        "model": name,
        "audio_ms": audio_ms.round(),
        "threads": threads,
        "served_end_of_speech_to_text_ms": served_ms.round(),
        "served_real_time_factor": served_ms / audio_ms,
        "direct_decode_ms": direct_ms.round(),
        "direct_real_time_factor": direct_ms / audio_ms,
        "served_over_direct": served_ms / direct_ms,
        "partial_draft_ms": partial_ms.round(),
        "partial_over_final": partial_ms / served_ms,
        "partial_text": partial_text,
        "text": text,
    });
    if json {
        return print_json(&report);
    }
    println!("speech model            {name} ({threads} threads)");
    println!("utterance               {:.2} s", audio_ms / 1000.0);
    println!(
        "served (worker)         end of speech to final text {:.0} ms, real-time factor {:.3}",
        served_ms,
        served_ms / audio_ms
    );
    println!(
        "direct (in-process)     decode {:.0} ms, real-time factor {:.3}",
        direct_ms,
        direct_ms / audio_ms
    );
    println!("served / direct         {:.3}", served_ms / direct_ms);
    println!(
        "partial text (draft)    {:.0} ms for the whole utterance, {:.3} of the final decode",
        partial_ms,
        partial_ms / served_ms
    );
    println!("partial heard           {partial_text}");
    println!("heard                   {text}");
    Ok(())
}
