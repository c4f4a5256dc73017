//! Playback through a private PulseAudio with a virtual speaker (`module-null-sink`):
//! speech played with `Player` is recorded from the speaker's monitor, and `stop()` cuts it;
//! a `Reader` speaks streamed text before the stream ends and stops at once.
//!
//! The player runs in a child process (this test binary re-run with an env marker) so that
//! `PULSE_SERVER` and friends apply before ALSA and cpal initialise.

use baton_tts::{EspeakVoice, Player, Reader, TtsError, Voice};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHILD: &str = "BATON_TTS_PLAYBACK_CHILD";
const RATE: usize = 16_000;

/// Child side: plays, reports what it did on stdout.
fn child(mode: &str) {
    match mode {
        "no-device" => match Player::new() {
            Err(e @ TtsError::NoDevice(_)) => println!("NO_DEVICE {e}"),
            Err(e) => println!("OTHER_ERROR {e}"),
            Ok(_) => println!("OPENED"),
        },
        "play" => {
            let voice = EspeakVoice::new("en-us");
            let short = voice.synthesize("Hello, this is Baton.").unwrap();
            let long = voice
                .synthesize(
                    "This is a much longer sentence that would keep talking for several seconds, \
                     long enough to show that stopping it really cuts the sound at once.",
                )
                .unwrap();
            assert!(long.duration_secs() > 4.0, "{}", long.duration_secs());
            let player = Player::new().unwrap();
            // Phase 1: a short utterance, played to its end.
            println!("SHORT {:.3}", short.duration_secs());
            player.play(short).unwrap();
            assert!(player.is_playing());
            assert!(player.wait_timeout(Duration::from_secs(60)));
            assert!(!player.is_playing());
            // A second of silence between the two phases (what the recording shows).
            std::thread::sleep(Duration::from_millis(1000));
            // Phase 2: a long utterance plus a queued one, stopped once one second of it
            // has played (however late playback started on a busy machine). `stop` first
            // gives a fresh queue, whose position starts at zero.
            player.stop().unwrap();
            player.play(long.clone()).unwrap();
            player.play(long).unwrap();
            wait_until("a second played", || {
                player.position() >= Duration::from_secs(1)
            });
            let t = Instant::now();
            player.stop().unwrap();
            assert!(!player.is_playing());
            println!("STOPPED_IN_MS {}", t.elapsed().as_millis());
            // Silence after the stop, for the recording to show it.
            std::thread::sleep(Duration::from_millis(1500));
            println!("DONE");
        }
        "reader" => {
            let player = Arc::new(Player::new().unwrap());
            let voice = Voice::Espeak(EspeakVoice::new("en-us"));
            let reader = Reader::start(voice, player.clone(), |e| println!("ERROR {e}"));
            // An answer streamed word by word. The stream holds after the second sentence
            // until speech is heard: a reader that waited for the end of the text would
            // never start, and the wait would fail.
            let first = "The first sentence is short. The second one arrives later, while \
                         the first is already being spoken.";
            let rest = " A third sentence follows it, and a fourth one ends the answer.";
            for piece in first.split_inclusive(' ') {
                reader.push(piece);
                std::thread::sleep(Duration::from_millis(50));
            }
            wait_until("speech before the end of the text", || player.is_playing());
            println!("SPOKE_BEFORE_THE_END");
            for piece in rest.split_inclusive(' ') {
                reader.push(piece);
            }
            reader.finish();
            // Stopped while a sentence sounds, a second into it (the first sentence is
            // longer than that).
            wait_until("a second of a sentence", || {
                player.position() >= Duration::from_secs(1)
            });
            let t = Instant::now();
            reader.stop();
            reader.wait();
            println!("STOPPED_IN_MS {}", t.elapsed().as_millis());
            assert!(!player.is_playing());
            // Silence after the stop, for the recording to show it.
            std::thread::sleep(Duration::from_millis(1000));
            println!("DONE");
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// Polls `done` every 10 ms for up to a minute (a generous bound for a busy machine).
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct Pulse {
    env: Vec<(String, PathBuf)>,
    _dir: tempfile::TempDir,
}

impl Pulse {
    fn start() -> Option<Pulse> {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
        let pulse = Pulse {
            env: vec![
                ("HOME".into(), dir.path().to_path_buf()),
                ("XDG_RUNTIME_DIR".into(), run.clone()),
                ("XDG_CONFIG_HOME".into(), dir.path().join("config")),
                (
                    "PULSE_SERVER".into(),
                    PathBuf::from(format!("unix:{}", run.join("pulse/native").display())),
                ),
            ],
            _dir: dir,
        };
        let started = pulse
            .cmd("pulseaudio")
            .args([
                "-D",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "-n",
                "--load=module-native-protocol-unix",
                "--load=module-null-sink sink_name=vspk",
            ])
            .stderr(Stdio::null())
            .status();
        match started {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("pulseaudio failed to start: {s}"),
            Err(e) => {
                eprintln!("skipped: pulseaudio is not installed ({e}); install pulseaudio and pulseaudio-utils");
                return None;
            }
        }
        let ok = pulse
            .cmd("pactl")
            .args(["set-default-sink", "vspk"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "pactl set-default-sink failed");
        Some(pulse)
    }

    fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Waits until something records from `source` (`pactl list short source-outputs`).
    fn wait_for_recording(&self, source: &str) {
        let list = |what: &str| {
            let out = self.cmd("pactl").args(["list", "short", what]).output();
            out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        wait_until(&format!("a recording from {source}"), || {
            let sources = list("sources");
            let index = sources.lines().find_map(|l| {
                let mut fields = l.split('\t');
                let index = fields.next()?;
                (fields.next()? == source).then(|| index.to_owned())
            });
            index.is_some_and(|i| {
                list("source-outputs")
                    .lines()
                    .any(|l| l.split('\t').nth(1) == Some(i.as_str()))
            })
        });
    }

    fn record(&self) -> Child {
        self.cmd("parec")
            .args([
                "-d",
                "vspk.monitor",
                "--format=s16le",
                "--rate=16000",
                "--channels=1",
                "--raw",
                "--latency-msec=20",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("parec (pulseaudio-utils) is needed for this test")
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.cmd("pulseaudio").arg("-k").status();
    }
}

fn run_child(pulse: &Pulse, mode: &str, extra_env: &[(&str, &Path)]) -> (Vec<String>, bool) {
    let exe = std::env::current_exe().unwrap();
    let mut c = pulse.cmd(exe);
    c.args([
        "--exact",
        "player_plays_through_pulseaudio_and_stop_cuts_it",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD, mode)
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in extra_env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    (lines, out.status.success())
}

/// Start and end (seconds) of the sounding stretches of `rec`: 20 ms windows above the
/// threshold, merged across pauses shorter than 400 ms.
fn segments(rec: &[i16]) -> Vec<(f64, f64)> {
    let win = RATE / 50;
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (n, w) in rec.chunks(win).enumerate() {
        let rms = (w.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
        if rms > 200.0 {
            let (s, e) = (n as f64 * 0.02, (n + 1) as f64 * 0.02);
            match out.last_mut() {
                Some(last) if s - last.1 < 0.4 => last.1 = e,
                _ => out.push((s, e)),
            }
        }
    }
    out
}

/// One audio test at a time: a starved audio client loses samples.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs this test binary's `test` as a child in `mode` while the virtual speaker is
/// recorded; returns its stdout lines, whether it succeeded, and the recording.
fn play_and_record(pulse: &Pulse, test: &str, mode: &str) -> (Vec<String>, bool, Vec<i16>) {
    let mut parec = pulse.record();
    let mut stdout = parec.stdout.take().unwrap();
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let recorded = recorded.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                recorded.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    pulse.wait_for_recording("vspk.monitor");
    let exe = std::env::current_exe().unwrap();
    let mut player = pulse
        .cmd(exe)
        .args(["--exact", test, "--nocapture"])
        .env(CHILD, mode)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(player.stdout.take().unwrap()).lines() {
        lines.push(line.unwrap());
    }
    let status = player.wait().unwrap();
    // The recording goes on until a second more has arrived: whatever the sound server
    // still held has reached it, followed by the silence after the player left.
    let exited = recorded.lock().unwrap().len();
    wait_until("a second more of the recording", || {
        recorded.lock().unwrap().len() >= exited + 2 * RATE
    });
    let _ = parec.kill();
    let _ = parec.wait();
    reader.join().unwrap();
    let bytes = std::mem::take(&mut *recorded.lock().unwrap());
    let rec = bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    (lines, status.success(), rec)
}

fn number_after(lines: &[String], key: &str) -> f64 {
    lines
        .iter()
        .find_map(|l| {
            l.split_whitespace()
                .skip_while(|w| *w != key)
                .nth(1)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no {key} in {lines:?}"))
        .parse()
        .unwrap()
}

#[test]
fn reader_speaks_while_text_streams_and_stops_at_once() {
    if let Ok(mode) = std::env::var(CHILD) {
        child(&mode);
        return;
    }
    let _serial = one_at_a_time();
    let Some(pulse) = Pulse::start() else { return };
    let (lines, ok, rec) = play_and_record(
        &pulse,
        "reader_speaks_while_text_streams_and_stops_at_once",
        "reader",
    );
    assert!(ok, "the reader child failed: {lines:?}");
    assert!(lines.iter().any(|l| l == "DONE"), "{lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with("ERROR")), "{lines:?}");
    assert!(
        lines.iter().any(|l| l == "SPOKE_BEFORE_THE_END"),
        "speech should start with the first sentence, not at the end of the stream: {lines:?}"
    );
    let stopped = number_after(&lines, "STOPPED_IN_MS");
    let segs = segments(&rec);
    eprintln!("stopped in {stopped} ms; sounding {segs:?}");
    // A sanity bound only: the recording below shows whether the sound was cut.
    assert!(stopped < 10_000.0, "stop took {stopped} ms");
    let sounding: f64 = segs.iter().map(|(s, e)| e - s).sum();
    assert!(sounding > 0.8, "too little was heard: {segs:?}");
    // Stopped 0.8 s after the stream ended: nothing sounds in the last second of the
    // recording (the child waits a second before it exits).
    let end = rec.len() as f64 / RATE as f64;
    let last = segs.last().map_or(0.0, |s| s.1);
    assert!(
        end - last > 0.8,
        "still sounding at {last:.2} s of {end:.2} s"
    );
}

#[test]
fn player_plays_through_pulseaudio_and_stop_cuts_it() {
    if let Ok(mode) = std::env::var(CHILD) {
        child(&mode);
        return;
    }
    let _serial = one_at_a_time();
    let Some(pulse) = Pulse::start() else { return };

    // No device: an ALSA configuration without any device gives an error, not a panic.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let (lines, ok) = run_child(&pulse, "no-device", &[("ALSA_CONFIG_PATH", empty.path())]);
    assert!(ok, "the no-device child crashed: {lines:?}");
    let line = lines
        .iter()
        .find(|l| l.contains("NO_DEVICE"))
        .unwrap_or_else(|| {
            panic!("expected a NoDevice error, got {lines:?}");
        });
    assert!(line.contains("no audio output device"), "{line}");

    // Playback, recorded from the virtual speaker's monitor.
    let (lines, ok, rec) = play_and_record(
        &pulse,
        "player_plays_through_pulseaudio_and_stop_cuts_it",
        "play",
    );
    assert!(ok, "the player child failed: {lines:?}");
    assert!(lines.iter().any(|l| l.contains("DONE")), "{lines:?}");
    let short = number_after(&lines, "SHORT");
    let segs = segments(&rec);
    eprintln!(
        "recorded {:.2} s; sounding stretches {segs:?}; short utterance {short:.2} s; {lines:?}",
        rec.len() as f64 / RATE as f64
    );
    assert_eq!(
        segs.len(),
        2,
        "expected the short utterance and the cut one: {segs:?}"
    );
    let first = segs[0].1 - segs[0].0;
    assert!(
        first > 0.8 && first <= short + 0.3,
        "the short utterance sounded {first:.2} s, expected about {short:.2} s"
    );
    // Stopped once one second of it had played: it must fall silent soon after (the
    // 20 ms analysis windows and the sound server's buffer add a little), long before the
    // two queued utterances (more than 8 s) would have ended.
    let second = segs[1].1 - segs[1].0;
    assert!(
        (0.8..=1.8).contains(&second),
        "the stopped utterance sounded {second:.2} s, expected about 1 s (stop after 1 s)"
    );
}
