//! [`SttEngine`]: runs `baton-stt-worker`, keeps it for the next utterance, restarts it
//! after a crash.

use crate::protocol::{
    encode_samples, SttEvent, SttRequest, WireSegment, PROTOCOL_VERSION, SAMPLE_RATE,
};
use async_trait::async_trait;
use baton_core::{
    AudioBuffer, Recognizer, SpeechError, TranscribeOptions, Transcript, TranscriptSegment,
};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{Mutex, MutexGuard};

/// Environment variable naming the worker binary.
pub const WORKER_ENV: &str = "BATON_STT_WORKER";
const WORKER_BINARY: &str = "baton-stt-worker";
/// Audio is sent in chunks of this many samples (one second).
const CHUNK: usize = SAMPLE_RATE as usize;

/// How the engine runs the worker.
#[derive(Debug, Clone)]
pub struct SttConfig {
    /// The whisper.cpp model file.
    pub model: PathBuf,
    /// CPU threads for whisper.cpp.
    pub threads: u32,
    /// The worker binary; `None` finds it (see [`find_worker`]).
    pub worker: Option<PathBuf>,
    /// The longest a decode may take before the worker is considered hung.
    pub decode_timeout: Duration,
}

impl SttConfig {
    /// A config for `model` with 2 threads and a 5-minute decode limit.
    pub fn new(model: impl Into<PathBuf>) -> Self {
        Self {
            model: model.into(),
            threads: 2,
            worker: None,
            decode_timeout: Duration::from_secs(300),
        }
    }
}

/// Locates the worker: `explicit`, else `$BATON_STT_WORKER`, else next to the running
/// binary (and its parent for test binaries in `deps/`), else on `PATH`.
pub fn find_worker(explicit: Option<&Path>) -> Result<PathBuf, SpeechError> {
    let missing = |m: String| SpeechError::Failed(m);
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(missing(format!(
                "the speech worker {} does not exist; build it with `cargo build -p baton-stt-worker`",
                path.display()
            )))
        };
    }
    if let Some(path) = std::env::var_os(WORKER_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(missing(format!(
                "{WORKER_ENV} points at {}, which does not exist; fix or unset it",
                path.display()
            )))
        };
    }
    let name = format!("{WORKER_BINARY}{}", std::env::consts::EXE_SUFFIX);
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            dirs.push(dir.to_path_buf());
            if dir.file_name().is_some_and(|n| n == "deps") {
                dirs.extend(dir.parent().map(Path::to_path_buf));
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|d| d.join(&name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            missing(format!(
                "the speech worker `{WORKER_BINARY}` was not found next to Baton or on PATH; build it with `cargo build -p baton-stt-worker` (or `make`), or set {WORKER_ENV}"
            ))
        })
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    async fn send(&mut self, request: &SttRequest) -> Result<(), SpeechError> {
        let mut line = serde_json::to_string(request).expect("requests serialise");
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| SpeechError::Failed(format!("the speech worker stopped listening ({e})")))
    }

    /// Reads events until `pick` accepts one (an error for the same utterance ends it).
    async fn wait<T>(
        &mut self,
        limit: Duration,
        mut pick: impl FnMut(SttEvent) -> Option<Result<T, SpeechError>>,
    ) -> Result<T, SpeechError> {
        let read = async {
            loop {
                let line = self.lines.next_line().await.map_err(|e| {
                    SpeechError::Failed(format!("cannot read the speech worker ({e})"))
                })?;
                let Some(line) = line else {
                    return Err(SpeechError::Failed(String::new()));
                };
                match serde_json::from_str::<SttEvent>(&line) {
                    Ok(event) => {
                        if let Some(result) = pick(event) {
                            return result;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%line, error = %e, "unreadable line from the speech worker")
                    }
                }
            }
        };
        match tokio::time::timeout(limit, read).await {
            Ok(result) => result,
            Err(_) => Err(SpeechError::Failed(format!(
                "the speech worker did not answer within {} s",
                limit.as_secs()
            ))),
        }
    }
}

/// Speech recognition through a supervised `baton-stt-worker`. Cheap to clone; utterances
/// are served one at a time.
#[derive(Clone)]
pub struct SttEngine {
    config: Arc<SttConfig>,
    worker: Arc<Mutex<Option<Worker>>>,
    next_id: Arc<AtomicU64>,
}

impl std::fmt::Debug for SttEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SttEngine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SttEngine {
    /// An engine for `config`; the worker starts on first use.
    pub fn new(config: SttConfig) -> Self {
        Self {
            config: Arc::new(config),
            worker: Arc::default(),
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    /// The process id of the running worker, if one runs (tests kill it).
    pub async fn worker_pid(&self) -> Option<u32> {
        self.worker.lock().await.as_ref().and_then(|w| w.child.id())
    }

    async fn start(&self) -> Result<Worker, SpeechError> {
        if !self.config.model.is_file() {
            return Err(SpeechError::Model(format!(
                "{} does not exist; fetch the speech models with `baton models fetch whisper-base`",
                self.config.model.display()
            )));
        }
        let binary = find_worker(self.config.worker.as_deref())?;
        let mut command = Command::new(&binary);
        command
            .arg("--serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        // Its own process group: a terminal's Ctrl-C stops the listening, not the worker.
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command
            .spawn()
            .map_err(|e| SpeechError::Failed(format!("cannot start {} ({e})", binary.display())))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut worker = Worker {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        };
        worker
            .send(&SttRequest::Hello {
                version: PROTOCOL_VERSION,
            })
            .await?;
        let hello = Duration::from_secs(10);
        worker
            .wait(hello, |e| match e {
                SttEvent::Ready { version, .. } if version == PROTOCOL_VERSION => Some(Ok(())),
                SttEvent::Ready { version, .. } => Some(Err(SpeechError::Failed(format!(
                    "the speech worker speaks protocol {version}, Baton {PROTOCOL_VERSION}: rebuild both (`make`)"
                )))),
                SttEvent::Error { message, .. } => Some(Err(SpeechError::Failed(message))),
                _ => None,
            })
            .await?;
        worker
            .send(&SttRequest::Load {
                model: self.config.model.display().to_string(),
                threads: self.config.threads,
            })
            .await?;
        let ms = worker
            .wait(Duration::from_secs(120), |e| match e {
                SttEvent::Loaded { ms, .. } => Some(Ok(ms)),
                SttEvent::Error { message, .. } => Some(Err(SpeechError::Model(message))),
                _ => None,
            })
            .await?;
        tracing::info!(model = %self.config.model.display(), ms, "speech worker ready");
        Ok(worker)
    }

    /// Starts the worker and loads the model now, if that is not done yet, so the first
    /// utterance does not wait for it.
    pub async fn warm(&self) -> Result<(), SpeechError> {
        let mut guard = self.worker.lock().await;
        self.ensure_started(&mut guard).await
    }

    async fn ensure_started(&self, worker: &mut Option<Worker>) -> Result<(), SpeechError> {
        let alive = match worker.as_mut() {
            Some(w) => w.child.try_wait().ok().flatten().is_none(),
            None => false,
        };
        if !alive {
            *worker = Some(self.start().await?);
        }
        Ok(())
    }

    /// Starts an utterance: the worker (started now if needed) is held until it finishes.
    pub async fn begin(&self) -> Result<Utterance<'_>, SpeechError> {
        let mut guard = self.worker.lock().await;
        self.ensure_started(&mut guard).await?;
        Ok(Utterance {
            id: format!("u{}", self.next_id.fetch_add(1, Ordering::Relaxed)),
            guard,
            timeout: self.config.decode_timeout,
            samples: 0,
        })
    }

    /// Transcribes 16 kHz mono samples in one go.
    pub async fn transcribe_samples(
        &self,
        samples: &[f32],
        language: Option<String>,
    ) -> Result<Transcript, SpeechError> {
        if samples.is_empty() {
            return Err(SpeechError::InvalidAudio(
                "there is no audio to transcribe".into(),
            ));
        }
        let mut utterance = self.begin().await?;
        utterance.push(samples).await?;
        utterance.finish(language).await
    }

    /// Stops the worker.
    pub async fn shutdown(&self) {
        if let Some(mut w) = self.worker.lock().await.take() {
            let _ = w.child.kill().await;
        }
    }
}

/// One utterance being streamed to the worker. Dropping it without [`Utterance::finish`]
/// forgets the audio.
pub struct Utterance<'a> {
    id: String,
    guard: MutexGuard<'a, Option<Worker>>,
    timeout: Duration,
    samples: usize,
}

impl Utterance<'_> {
    fn worker(&mut self) -> &mut Worker {
        self.guard.as_mut().expect("a started worker")
    }

    /// Turns a failure into the user's error and drops a dead worker so the next utterance
    /// starts a fresh one.
    async fn fail(&mut self, error: SpeechError) -> SpeechError {
        let status = match self.guard.as_mut() {
            Some(w) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                w.child.try_wait().ok().flatten()
            }
            None => None,
        };
        if let Some(status) = status {
            *self.guard = None;
            return SpeechError::Failed(format!(
                "the speech worker stopped ({status}) while transcribing; it restarts with the next utterance, so say it again"
            ));
        }
        if matches!(&error, SpeechError::Failed(m) if m.contains("did not answer")) {
            if let Some(mut w) = self.guard.take() {
                let _ = w.child.kill().await;
            }
        }
        error
    }

    /// Appends 16 kHz mono samples.
    pub async fn push(&mut self, samples: &[f32]) -> Result<(), SpeechError> {
        for chunk in samples.chunks(CHUNK) {
            let request = SttRequest::Audio {
                id: self.id.clone(),
                samples: encode_samples(chunk),
            };
            if let Err(e) = self.worker().send(&request).await {
                return Err(self.fail(e).await);
            }
        }
        self.samples += samples.len();
        Ok(())
    }

    /// Replaces the audio pushed so far with `samples` (the worker forgets the old audio).
    pub async fn replace(&mut self, samples: &[f32]) -> Result<(), SpeechError> {
        let cancel = SttRequest::Cancel {
            id: self.id.clone(),
        };
        if let Err(e) = self.worker().send(&cancel).await {
            return Err(self.fail(e).await);
        }
        self.samples = 0;
        self.push(samples).await
    }

    /// Seconds of audio pushed so far.
    pub fn seconds(&self) -> f64 {
        self.samples as f64 / f64::from(SAMPLE_RATE)
    }

    /// Sends `request` and waits for the event `pick` accepts; any failure goes through
    /// [`Utterance::fail`].
    async fn request<T>(
        &mut self,
        request: SttRequest,
        pick: impl FnMut(SttEvent) -> Option<Result<T, SpeechError>>,
    ) -> Result<T, SpeechError> {
        let timeout = self.timeout;
        let worker = self.worker();
        let result = match worker.send(&request).await {
            Ok(()) => worker.wait(timeout, pick).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(value) => Ok(value),
            Err(e) => Err(self.fail(e).await),
        }
    }

    /// The text of the utterance so far.
    pub async fn partial(&mut self, language: Option<String>) -> Result<String, SpeechError> {
        let id = self.id.clone();
        let request = SttRequest::Partial {
            id: id.clone(),
            language,
        };
        self.request(request, |e| match e {
            SttEvent::Partial { id: got, text, ms } if got == id => {
                tracing::info!(ms, chars = text.len(), "partial text decoded");
                Some(Ok(text))
            }
            SttEvent::Error {
                id: Some(got),
                message,
            } if got == id => Some(Err(SpeechError::Failed(message))),
            _ => None,
        })
        .await
    }

    /// The final transcript.
    pub async fn finish(mut self, language: Option<String>) -> Result<Transcript, SpeechError> {
        let id = self.id.clone();
        let request = SttRequest::Finish {
            id: id.clone(),
            language,
        };
        self.request(request, |e| match e {
            SttEvent::Done {
                id: got,
                text,
                language,
                segments,
                audio_ms,
                ms,
            } if got == id => {
                tracing::info!(ms, audio_ms, "final text decoded");
                Some(Ok(Transcript {
                    text,
                    language,
                    segments: segments.into_iter().map(segment).collect(),
                }))
            }
            SttEvent::Error {
                id: Some(got),
                message,
            } if got == id => Some(Err(SpeechError::InvalidAudio(message))),
            _ => None,
        })
        .await
    }
}

fn segment(s: WireSegment) -> TranscriptSegment {
    TranscriptSegment {
        start: s.start_ms as f64 / 1000.0,
        end: s.end_ms as f64 / 1000.0,
        text: s.text.trim().to_owned(),
    }
}

#[async_trait]
impl Recognizer for SttEngine {
    async fn transcribe(
        &self,
        audio: AudioBuffer,
        options: TranscribeOptions,
        on_partial: &(dyn for<'s> Fn(&'s str) + Send + Sync),
    ) -> Result<Transcript, SpeechError> {
        if audio.sample_rate != SAMPLE_RATE {
            return Err(SpeechError::InvalidAudio(format!(
                "audio at {} Hz; the recogniser takes 16 kHz mono (resample first)",
                audio.sample_rate
            )));
        }
        let transcript = self
            .transcribe_samples(&audio.samples, options.language)
            .await?;
        on_partial(&transcript.text);
        Ok(transcript)
    }
}
