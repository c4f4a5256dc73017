//! The Microphone and Listener through a real, private PulseAudio server with a virtual
//! microphone (module-pipe-source fed from a FIFO), reached by cpal through ALSA's default
//! device (libasound2-plugins' pulse plugin). Capture runs in child processes (this test
//! binary re-executed with an env marker) so the audio environment is set before ALSA
//! starts. PulseAudio is stopped at the end even when the test fails.

mod common;

use baton_speech::{
    decode_file, to_16k_mono, ListenEvent, Listener, Microphone, SegmentEvent, SpeechInputError,
};
use common::*;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const CHILD: &str = "BATON_SPEECH_MIC_CHILD";
const TEST: &str = "microphone_records_a_virtual_source_and_reports_its_loss";
const THRESHOLD: f32 = 0.01;

fn private_env(root: &Path) -> (PathBuf, PathBuf) {
    let home = root.join("home");
    let runtime = root.join("run");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    // No autospawn: a client must never start a server of its own.
    std::fs::write(home.join("client.conf"), "autospawn = no\n").unwrap();
    (home, runtime)
}

fn env_cmd(cmd: &mut Command, home: &Path, runtime: &Path) {
    cmd.env("HOME", home)
        .env("XDG_RUNTIME_DIR", runtime)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("PULSE_CLIENTCONFIG", home.join("client.conf"))
        .env(
            "PULSE_SERVER",
            format!("unix:{}", runtime.join("pulse/native").display()),
        )
        .env_remove("DBUS_SESSION_BUS_ADDRESS");
    // The private HOME hides the project venv: point ONNX Runtime at the library directly.
    if let Ok(lib) = baton_onnx::find_library() {
        cmd.env("ORT_DYLIB_PATH", lib);
    }
}

/// A private PulseAudio; stopped on drop.
struct Pulse {
    _root: tempfile::TempDir,
    home: PathBuf,
    runtime: PathBuf,
}

impl Pulse {
    fn start() -> Pulse {
        let root = tempfile::tempdir().unwrap();
        let (home, runtime) = private_env(root.path());
        let pulse = Pulse {
            _root: root,
            home,
            runtime,
        };
        // Only the modules needed: without module-rescue-streams a removed source ends
        // its recording streams instead of moving them elsewhere.
        let out = pulse
            .cmd("pulseaudio")
            .args([
                "-n",
                "-D",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "--load=module-native-protocol-unix",
            ])
            .output()
            .expect("pulseaudio is installed by scripts/setup.sh");
        assert!(
            out.status.success(),
            "pulseaudio: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let t = Instant::now();
        while !pulse
            .cmd("pactl")
            .arg("info")
            .output()
            .unwrap()
            .status
            .success()
        {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "pulseaudio does not answer"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pulse
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        env_cmd(&mut c, &self.home, &self.runtime);
        c
    }

    fn pactl(&self, args: &[&str]) -> String {
        let out = self.cmd("pactl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "pactl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn fifo(&self) -> PathBuf {
        self.runtime.join("vmic.fifo")
    }

    /// Loads the virtual microphone; returns its module index.
    fn load_vmic(&self) -> String {
        let module = self.pactl(&[
            "load-module",
            "module-pipe-source",
            "source_name=vmic",
            &format!("file={}", self.fifo().display()),
            "format=s16le",
            "rate=16000",
            "channels=1",
        ]);
        self.pactl(&["set-default-source", "vmic"]);
        module
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = self.cmd("pulseaudio").arg("-k").output();
        let pid_file = self.runtime.join("pulse/pid");
        let t = Instant::now();
        while pid_file.exists() && t.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Writes silence into the FIFO in real time (20 ms chunks) and the speech once `marker`
/// exists, until stopped or the FIFO's reader goes away.
struct Feeder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Feeder {
    fn start(fifo: PathBuf, speech: Vec<u8>, marker: PathBuf) -> Feeder {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&fifo) else {
                return;
            };
            let chunk = 640; // 20 ms of s16le at 16 kHz
            let silence = vec![0u8; chunk];
            let mut spoken = false;
            let mut pos = 0usize;
            let start = Instant::now();
            let mut sent = 0u64;
            while !s.load(Ordering::SeqCst) {
                let data: &[u8] = if !spoken && marker.exists() && pos < speech.len() {
                    let end = (pos + chunk).min(speech.len());
                    let d = &speech[pos..end];
                    pos = end;
                    spoken = pos >= speech.len();
                    d
                } else {
                    &silence
                };
                if f.write_all(data).is_err() {
                    return;
                }
                sent += data.len() as u64;
                // Pace at real time.
                let due = Duration::from_micros(sent * 1_000_000 / 32_000);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        });
        Feeder {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs this test in a child process in `mode`; returns its stdout.
fn child(mode: &str, home: &Path, runtime: &Path, extra: &[(&str, String)]) -> String {
    let exe = std::env::current_exe().unwrap();
    let mut c = Command::new(exe);
    c.args(["--exact", TEST, "--nocapture", "--test-threads=1"]);
    env_cmd(&mut c, home, runtime);
    c.env(CHILD, mode);
    for (k, v) in extra {
        c.env(k, v);
    }
    let mut proc = c
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while proc.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(60) {
            let _ = proc.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = proc.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child {mode} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    println!("--- child {mode}:\n{}", stdout.trim());
    stdout
}

fn touch(path: &str) {
    std::fs::write(path, b"").unwrap();
}

/// The child side.
fn child_check(mode: &str) {
    let marker = std::env::var("MARKER").unwrap_or_default();
    match mode {
        "capture" => {
            let expected: usize = std::env::var("EXPECT_VOICED").unwrap().parse().unwrap();
            println!("devices: {:?}", Microphone::devices().unwrap());
            let mut mic = Microphone::open(None).unwrap_or_else(|e| panic!("{e}"));
            println!(
                "opened {:?} at {} Hz, {} channel(s)",
                mic.name(),
                mic.device_rate(),
                mic.device_channels()
            );
            touch(&marker);
            let mut all = Vec::new();
            let mut max_level = 0f32;
            let t = Instant::now();
            let mut last_voiced = None;
            while t.elapsed() < Duration::from_secs(20) {
                let s = mic
                    .read(Duration::from_millis(100))
                    .unwrap_or_else(|e| panic!("{e}"));
                max_level = max_level.max(mic.level());
                if s.iter().any(|x| x.abs() > THRESHOLD) {
                    last_voiced = Some(Instant::now());
                }
                all.extend(s);
                if last_voiced.is_some_and(|v| v.elapsed() > Duration::from_millis(1500)) {
                    break;
                }
            }
            let voiced = all.iter().filter(|x| x.abs() > THRESHOLD).count();
            let span = voiced_span(&all, THRESHOLD);
            println!(
                "captured {} samples; voiced samples {voiced} (speech has {expected}); voiced span {span:?}; max level {max_level:.3}; dropped {}",
                all.len(),
                mic.dropped_frames()
            );
            let ratio = voiced as f64 / expected as f64;
            assert!((0.8..=1.2).contains(&ratio), "voiced ratio {ratio:.3}");
            let (a, b) = span.unwrap();
            let dur = (b - a) as f64 / 16_000.0;
            let want: f64 = std::env::var("EXPECT_SPAN").unwrap().parse().unwrap();
            println!("voiced span {dur:.3} s, speech {want:.3} s");
            assert!((dur - want).abs() <= want * 0.2, "span {dur} vs {want}");
            assert!(max_level > 0.01, "level meter never moved");
        }
        "listen" => {
            let Some(model) = std::env::var_os("BATON_SILERO_VAD") else {
                println!("skipped: BATON_SILERO_VAD not set");
                touch(&marker);
                return;
            };
            let mut l = Listener::open(None, Path::new(&model)).unwrap_or_else(|e| panic!("{e}"));
            touch(&marker);
            let mut ended = Vec::new();
            let t = Instant::now();
            let mut levels = 0;
            while t.elapsed() < Duration::from_secs(12) {
                match l.next_event(Duration::from_millis(200)).unwrap() {
                    Some(ListenEvent::Segment {
                        event:
                            SegmentEvent::SpeechEnded {
                                utterance,
                                start_ms,
                                end_ms,
                            },
                        ..
                    }) => {
                        println!(
                            "utterance {start_ms}..{end_ms} ms ({} samples)",
                            utterance.len()
                        );
                        ended.push(end_ms - start_ms);
                    }
                    Some(ListenEvent::Level(_)) => levels += 1,
                    _ => {}
                }
            }
            println!("{levels} level events");
            assert_eq!(ended.len(), 1, "{ended:?}");
            let want: f64 = std::env::var("EXPECT_SPAN").unwrap().parse().unwrap();
            let got = ended[0] as f64 / 1000.0;
            assert!(
                (got - want).abs() < 0.8,
                "utterance {got} s vs speech {want} s"
            );
        }
        "unplug" => {
            let mut mic = Microphone::open(None).unwrap_or_else(|e| panic!("{e}"));
            touch(&marker);
            let t = Instant::now();
            let mut got = 0usize;
            let err = loop {
                match mic.read(Duration::from_millis(100)) {
                    Ok(s) => got += s.len(),
                    Err(e) => break e,
                }
                assert!(
                    t.elapsed() < Duration::from_secs(20),
                    "no error after the unplug"
                );
            };
            println!("read {got} samples, then: {err}");
            assert!(
                matches!(err, SpeechInputError::DeviceLost { .. }),
                "{err:?}"
            );
            assert!(err.to_string().contains("pick another input device"));
            // The error sticks, and drop is clean.
            assert!(mic.read(Duration::from_millis(10)).is_err());
        }
        "unknown-device" => {
            let e = Microphone::open(Some("no such microphone")).unwrap_err();
            println!("{e}");
            assert!(
                matches!(e, SpeechInputError::DeviceNotFound { .. }),
                "{e:?}"
            );
            assert!(e.to_string().contains("pick one of"));
        }
        "no-server" => {
            println!("devices: {:?}", Microphone::devices());
            let e = Microphone::open(None).unwrap_err();
            let msg = e.to_string();
            println!("{msg}");
            assert!(!msg.contains('\n'));
            assert!(
                msg.contains("PulseAudio") || msg.contains("microphone") || msg.contains("pick"),
                "{msg}"
            );
        }
        other => panic!("unknown mode {other}"),
    }
}

fn wait_for(path: &Path) {
    let t = Instant::now();
    while !path.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "child never got ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn microphone_records_a_virtual_source_and_reports_its_loss() {
    if let Ok(mode) = std::env::var(CHILD) {
        child_check(&mode);
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // The speech: espeak-ng -> raw s16le 16 kHz mono.
    let wav = work.path().join("speech.wav");
    espeak(SENTENCE, &wav);
    let raw = work.path().join("speech.raw");
    sox(&[
        &wav,
        &"-r",
        &"16000",
        &"-c",
        &"1",
        &"-b",
        &"16",
        &"-e",
        &"signed-integer",
        &"-t",
        &"raw",
        &raw,
    ]);
    let speech = std::fs::read(&raw).unwrap();
    let samples = read_s16(&raw);
    let voiced = samples.iter().filter(|x| x.abs() > THRESHOLD).count();
    let (a, b) = voiced_span(&samples, THRESHOLD).unwrap();
    let span = (b - a) as f64 / 16_000.0;
    // The decoder agrees with sox about the same speech.
    let decoded = to_16k_mono(&decode_file(&wav).unwrap());
    assert!((decoded.samples.len() as i64 - samples.len() as i64).abs() < 40);

    // No audio server at all: a clear error, no panic.
    {
        let (home, runtime) = private_env(&work.path().join("none"));
        child("no-server", &home, &runtime, &[]);
    }

    let pulse = Pulse::start();
    let module = pulse.load_vmic();
    let expect = [
        ("EXPECT_VOICED", voiced.to_string()),
        ("EXPECT_SPAN", span.to_string()),
    ];
    for mode in ["capture", "listen"] {
        let marker = work.path().join(format!("{mode}.ready"));
        let _feeder = Feeder::start(pulse.fifo(), speech.clone(), marker.clone());
        let mut extra = expect.to_vec();
        extra.push(("MARKER", marker.display().to_string()));
        child(mode, &pulse.home, &pulse.runtime, &extra);
    }
    child("unknown-device", &pulse.home, &pulse.runtime, &[]);

    // Unplug: remove the source while the child reads.
    let marker = work.path().join("unplug.ready");
    let feeder = Feeder::start(pulse.fifo(), Vec::new(), work.path().join("never"));
    let home = pulse.home.clone();
    let runtime = pulse.runtime.clone();
    let m = marker.clone();
    let reader = std::thread::spawn(move || {
        child(
            "unplug",
            &home,
            &runtime,
            &[("MARKER", m.display().to_string())],
        )
    });
    wait_for(&marker);
    std::thread::sleep(Duration::from_millis(700));
    pulse.pactl(&["unload-module", &module]);
    drop(feeder);
    let out = reader.join();
    drop(pulse);
    assert!(out.is_ok(), "the unplug child failed");
}
