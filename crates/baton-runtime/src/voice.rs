//! Voice: speech recognition through the supervised whisper.cpp worker (`baton-stt`), with
//! audio files decoded and resampled by `baton-speech`.

use crate::{Runtime, RuntimeError};
use baton_core::{ModelFormat, SpeechError, Transcript};
use baton_stt::{SttConfig, SttEngine};
use std::collections::VecDeque;
use std::path::Path;

impl Runtime {
    /// The speech recognition engine for `model` (default: `voice.stt_model`), started on
    /// first use and kept for the next utterance.
    pub async fn recognizer(&self, model: Option<&str>) -> Result<SttEngine, RuntimeError> {
        let name = model.unwrap_or(&self.config.voice.stt_model).to_owned();
        if let Some(engine) = self.stt.lock().await.get(&name) {
            return Ok(engine.clone());
        }
        let record = self.store.model(&name).await?.ok_or_else(|| {
            RuntimeError::Speech(SpeechError::Model(format!(
                "the speech model `{name}` is not installed; fetch it with `baton models fetch {name}`"
            )))
        })?;
        if record.format != ModelFormat::WhisperGgml {
            return Err(RuntimeError::Speech(SpeechError::Model(format!(
                "`{name}` is not a speech recognition model; see `baton models list`"
            ))));
        }
        let mut config = SttConfig::new(&record.path);
        config.threads = self.config.voice.threads;
        let engine = SttEngine::new(config);
        self.stt.lock().await.insert(name, engine.clone());
        Ok(engine)
    }

    /// Transcribes an audio file (WAV, MP3, FLAC, OGG at any rate).
    pub async fn transcribe_file(
        &self,
        path: &Path,
        model: Option<&str>,
        language: Option<String>,
    ) -> Result<Transcript, RuntimeError> {
        let owned = path.to_path_buf();
        let audio = tokio::task::spawn_blocking(move || {
            baton_speech::decode_file(&owned).map(|a| baton_speech::to_16k_mono(&a))
        })
        .await
        .expect("decoding does not panic")
        .map_err(|e| RuntimeError::Speech(SpeechError::InvalidAudio(e.to_string())))?;
        if audio.samples.is_empty() {
            return Err(RuntimeError::Speech(SpeechError::InvalidAudio(format!(
                "{} holds no audio samples",
                path.display()
            ))));
        }
        let engine = self.recognizer(model).await?;
        let language = language.or_else(|| self.config.voice.language());
        Ok(engine.transcribe_samples(&audio.samples, language).await?)
    }
}

/// What [`Runtime::listen`] reports while it listens.
#[derive(Debug, Clone, PartialEq)]
pub enum VoiceEvent {
    /// The microphone is open and listening (its name).
    Listening(String),
    /// The input level (RMS, 0..1), about every 50 ms: for a level meter.
    Level(f32),
    /// Speech began.
    SpeechStarted,
    /// The text of the utterance so far.
    Partial(String),
    /// An utterance is complete: its final text.
    Final(Transcript),
}

/// How [`Runtime::listen`] listens.
#[derive(Debug, Clone, Default)]
pub struct ListenOptions {
    /// Input device name (`None`: the default input).
    pub device: Option<String>,
    /// Stop after this many utterances (0: until cancelled).
    pub utterances: usize,
    /// Speech model (`None`: `voice.stt_model`).
    pub model: Option<String>,
    /// Spoken language (`None`: `voice.language`).
    pub language: Option<String>,
    /// Whether to transcribe partial text while the person speaks.
    pub partials: bool,
}

/// How much audio an utterance in progress may go on for after listening was stopped
/// (counted in audio, so a busy machine that processes the microphone late still gets the
/// words said just before the release).
const STOP_GRACE_MS: u64 = 800;

/// The longest wait for that audio (a microphone that stalls must not hold listening open).
const STOP_GRACE_WALL: std::time::Duration = std::time::Duration::from_secs(5);

/// Messages from the microphone thread.
enum Heard {
    Open(String),
    Level(f32),
    Started,
    Progress(Vec<f32>),
    Ended(Vec<f32>),
    Failed(SpeechError),
}

impl Runtime {
    /// The path of the registered voice activity model, or what to run to get it.
    async fn vad_model_path(&self) -> Result<std::path::PathBuf, RuntimeError> {
        let name = &self.config.voice.vad_model;
        let record = self.store.model(name).await?.ok_or_else(|| {
            RuntimeError::Speech(SpeechError::Model(format!(
                "the voice activity model `{name}` is not installed; fetch it with `baton models fetch {name}`"
            )))
        })?;
        Ok(std::path::PathBuf::from(record.path))
    }

    /// Listens to the microphone: utterances are cut by voice activity detection, partial
    /// text is reported while the person speaks (when asked), and each utterance's final
    /// text is reported and returned. Ends when `cancel` fires (an utterance in progress is
    /// finished first) or after `options.utterances` utterances.
    pub async fn listen(
        &self,
        options: ListenOptions,
        on_event: &(dyn Fn(VoiceEvent) + Send + Sync),
        cancel: baton_core::CancellationToken,
    ) -> Result<Vec<Transcript>, RuntimeError> {
        let vad = self.vad_model_path().await?;
        let engine = self.recognizer(options.model.as_deref()).await?;
        let language = options
            .language
            .clone()
            .or_else(|| self.config.voice.language());
        // The worker loads its model while the microphone opens.
        let warming = {
            let engine = engine.clone();
            tokio::spawn(async move {
                if let Err(e) = engine.warm().await {
                    tracing::debug!(error = %e, "the speech worker did not start early");
                }
            })
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Heard>();
        let stop = cancel.clone();
        let device = options.device.clone();
        let mic = tokio::task::spawn_blocking(move || {
            let mut listener = match baton_speech::Listener::open(device.as_deref(), &vad) {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Heard::Failed(SpeechError::NoDevice(e.to_string())));
                    return;
                }
            };
            let _ = tx.send(Heard::Open(device.unwrap_or_else(|| "default".into())));
            use baton_speech::{ListenEvent, SegmentEvent};
            let mut in_speech = false;
            // When listening is stopped mid-utterance (push-to-talk released), the last
            // word gets STOP_GRACE_MS of audio to end in silence before the utterance is
            // cut: (audio position, wall-clock limit) at which to cut.
            let mut cut_at: Option<(u64, std::time::Instant)> = None;
            let mut cut = false;
            loop {
                if stop.is_cancelled() {
                    // Done once nothing is being said, or once the cut utterance's events
                    // (its end, when it held enough speech) were passed on.
                    if !in_speech || (cut && !listener.has_pending_events()) {
                        return;
                    }
                    let position = listener.segmenter().position_ms();
                    let (at, latest) = *cut_at.get_or_insert_with(|| {
                        (
                            position + STOP_GRACE_MS,
                            std::time::Instant::now() + STOP_GRACE_WALL,
                        )
                    });
                    if !cut && (position >= at || std::time::Instant::now() >= latest) {
                        listener.end_utterance();
                        cut = true;
                    }
                }
                let event = match listener.next_event(std::time::Duration::from_millis(100)) {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = tx.send(Heard::Failed(SpeechError::NoDevice(e.to_string())));
                        return;
                    }
                };
                let sent = match event {
                    None => Ok(()),
                    Some(ListenEvent::Level(level)) => tx.send(Heard::Level(level)),
                    Some(ListenEvent::Segment { event, .. }) => match event {
                        SegmentEvent::SpeechStarted { .. } => {
                            in_speech = true;
                            tx.send(Heard::Started)
                        }
                        SegmentEvent::Speech { .. } => {
                            tx.send(Heard::Progress(listener.current_utterance().to_vec()))
                        }
                        SegmentEvent::SpeechEnded { utterance, .. } => {
                            in_speech = false;
                            tx.send(Heard::Ended(utterance))
                        }
                    },
                };
                if sent.is_err() {
                    return;
                }
            }
        });
        let mut results = Vec::new();
        let mut current: Option<(baton_stt::Utterance<'_>, usize)> = None;
        // What arrived while a decode ran (levels are passed on at once).
        let mut backlog = VecDeque::new();
        let outcome: Result<(), RuntimeError> = async {
            loop {
                let heard = match backlog.pop_front() {
                    Some(h) => h,
                    None => match rx.recv().await {
                        Some(h) => h,
                        None => break,
                    },
                };
                match heard {
                    Heard::Open(name) => on_event(VoiceEvent::Listening(name)),
                    Heard::Level(level) => on_event(VoiceEvent::Level(level)),
                    Heard::Failed(e) => return Err(e.into()),
                    Heard::Started => {
                        current = Some((engine.begin().await?, 0));
                        on_event(VoiceEvent::SpeechStarted);
                    }
                    Heard::Progress(mut snapshot) => {
                        // Partial decoding takes time: skip to the newest snapshot, and
                        // none at all when the utterance has ended meanwhile.
                        while let Ok(h) = rx.try_recv() {
                            keep(h, &mut backlog, on_event);
                        }
                        while let Some(Heard::Progress(_)) = backlog.front() {
                            if let Some(Heard::Progress(s)) = backlog.pop_front() {
                                snapshot = s;
                            }
                        }
                        let goes_on = backlog.is_empty();
                        if let Some((utterance, pushed)) = current.as_mut() {
                            if snapshot.len() > *pushed {
                                utterance.push(&snapshot[*pushed..]).await?;
                                *pushed = snapshot.len();
                            }
                            if options.partials && goes_on {
                                let partial = utterance.partial(language.clone());
                                let text = passing_levels(partial, &mut rx, &mut backlog, on_event)
                                    .await?;
                                if !text.is_empty() {
                                    on_event(VoiceEvent::Partial(text));
                                }
                            }
                        }
                    }
                    Heard::Ended(all) => {
                        let finish = self.finish_utterance(
                            &mut current,
                            all,
                            &language,
                            on_event,
                            &mut results,
                        );
                        passing_levels(finish, &mut rx, &mut backlog, on_event).await?;
                    }
                }
                if options.utterances > 0 && results.len() >= options.utterances {
                    cancel.cancel();
                    break;
                }
            }
            Ok(())
        }
        .await;
        cancel.cancel();
        drop(rx);
        let _ = mic.await;
        let _ = warming.await;
        outcome.map(|()| results)
    }

    async fn finish_utterance<'a>(
        &self,
        current: &mut Option<(baton_stt::Utterance<'a>, usize)>,
        all: Vec<f32>,
        language: &Option<String>,
        on_event: &(dyn Fn(VoiceEvent) + Send + Sync),
        results: &mut Vec<Transcript>,
    ) -> Result<(), RuntimeError> {
        let Some((mut utterance, _)) = current.take() else {
            return Ok(());
        };
        // The segmenter's final utterance is not always the audio streamed for partials
        // with more appended (its pre- and post-roll are settled at the end): the final
        // text is decoded from exactly the final utterance.
        utterance.replace(&all).await?;
        let transcript = utterance.finish(language.clone()).await?;
        if !transcript.text.trim().is_empty() {
            on_event(VoiceEvent::Final(transcript.clone()));
            results.push(transcript);
        }
        Ok(())
    }
}

/// Keeps a message for later, passing a level on at once.
fn keep(
    heard: Heard,
    backlog: &mut VecDeque<Heard>,
    on_event: &(dyn Fn(VoiceEvent) + Send + Sync),
) {
    match heard {
        Heard::Level(level) => on_event(VoiceEvent::Level(level)),
        other => backlog.push_back(other),
    }
}

/// Awaits `work` (a decode) while passing levels on, so the meter keeps moving; other
/// messages wait in `backlog`, in order.
async fn passing_levels<T>(
    work: impl std::future::Future<Output = T>,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Heard>,
    backlog: &mut VecDeque<Heard>,
    on_event: &(dyn Fn(VoiceEvent) + Send + Sync),
) -> T {
    tokio::pin!(work);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return out,
            Some(heard) = rx.recv() => keep(heard, backlog, on_event),
        }
    }
}

impl Runtime {
    /// The voice that reads text aloud: the configured Piper voice (`voice.tts_voice`) when
    /// it is installed and loads, else espeak-ng. The notice says which and why.
    pub async fn voice(&self) -> Result<baton_tts::VoiceChoice, RuntimeError> {
        if let Some(choice) = self.tts.lock().await.clone() {
            return Ok(choice);
        }
        let name = &self.config.voice.tts_voice;
        let onnx = self
            .store
            .model(name)
            .await?
            .map(|r| std::path::PathBuf::from(r.path));
        let choice =
            tokio::task::spawn_blocking(move || baton_tts::Voice::choose(onnx.as_deref(), "en-us"))
                .await
                .expect("choosing a voice does not panic")
                .map_err(|e| RuntimeError::Speech(e.into()))?;
        *self.tts.lock().await = Some(choice.clone());
        Ok(choice)
    }

    /// Speaks `text` into audio with [`Runtime::voice`].
    pub async fn speak(&self, text: &str) -> Result<baton_core::AudioBuffer, RuntimeError> {
        if text.trim().is_empty() {
            return Err(RuntimeError::Speech(SpeechError::InvalidAudio(
                "there is no text to speak".into(),
            )));
        }
        let voice = self.voice().await?.voice;
        let text = text.to_owned();
        tokio::task::spawn_blocking(move || voice.synthesize(&text))
            .await
            .expect("synthesis does not panic")
            .map_err(|e| RuntimeError::Speech(e.into()))
    }
}
