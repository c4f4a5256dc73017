//! Speaks text into a WAV file and reports the real-time factor.
//!
//! `cargo run -p baton-tts --example say -- (--piper VOICE.onnx | --espeak VOICE) OUT.wav TEXT...`
//! (`--play` instead of OUT.wav plays it on the default device).

use baton_tts::{write_wav, EspeakVoice, PiperVoice, Player, Voice};
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        return Err(
            "usage: say (--piper VOICE.onnx | --espeak VOICE) (OUT.wav | --play) TEXT...".into(),
        );
    }
    let voice = match args[0].as_str() {
        "--piper" => Voice::Piper(PiperVoice::load_default_config(&PathBuf::from(&args[1]))?),
        "--espeak" => Voice::Espeak(EspeakVoice::new(&args[1])),
        other => return Err(format!("unknown voice option {other}").into()),
    };
    let text = args[3..].join(" ");
    let t = Instant::now();
    let audio = voice.synthesize(&text)?;
    let took = t.elapsed().as_secs_f64();
    eprintln!(
        "{}: {:.2} s of audio in {:.3} s (real-time factor {:.3})",
        voice.describe(),
        audio.duration_secs(),
        took,
        took / audio.duration_secs().max(1e-9)
    );
    if args[2] == "--play" {
        let player = Player::new()?;
        player.play(audio)?;
        player.wait_until_done();
    } else {
        write_wav(&PathBuf::from(&args[2]), &audio)?;
    }
    Ok(())
}
