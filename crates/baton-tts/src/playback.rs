//! [`Player`]: interruptible playback through rodio (cpal → ALSA → the sound server), and
//! [`write_wav`].

use crate::error::TtsError;
use baton_core::AudioBuffer;
use rodio::buffer::SamplesBuffer;
use rodio::{OutputStream, OutputStreamHandle, Sink};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Plays audio buffers one after another on the default output device. `stop` cuts the
/// current and queued audio at once. `Send + Sync`: share it between tasks.
pub struct Player {
    handle: OutputStreamHandle,
    sink: Mutex<Arc<Sink>>,
    /// Dropping it ends the thread that owns the (non-`Send`) output stream.
    shutdown: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Player {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Player")
            .field("playing", &self.is_playing())
            .finish_non_exhaustive()
    }
}

impl Player {
    /// Opens the default output device. No device (or no sound server) gives
    /// [`TtsError::NoDevice`], never a panic.
    pub fn new() -> Result<Player, TtsError> {
        let (ready_tx, ready_rx) = mpsc::channel::<Result<OutputStreamHandle, String>>();
        let (shutdown_tx, shutdown_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("baton-tts-audio".into())
            .spawn(move || {
                let opened = std::panic::catch_unwind(OutputStream::try_default);
                match opened {
                    Ok(Ok((stream, handle))) => {
                        if ready_tx.send(Ok(handle)).is_ok() {
                            // Keep the stream alive until the player is dropped.
                            let _ = shutdown_rx.recv();
                        }
                        drop(stream);
                    }
                    Ok(Err(e)) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                    }
                    Err(_) => {
                        let _ = ready_tx.send(Err("the audio backend panicked".into()));
                    }
                }
            })
            .map_err(|e| TtsError::NoDevice(format!("cannot start the audio thread: {e}")))?;
        let handle = match ready_rx.recv() {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(TtsError::NoDevice(e));
            }
            Err(_) => {
                let _ = thread.join();
                return Err(TtsError::NoDevice("the audio thread ended".into()));
            }
        };
        let sink = Sink::try_new(&handle).map_err(|e| TtsError::NoDevice(e.to_string()))?;
        Ok(Player {
            handle,
            sink: Mutex::new(Arc::new(sink)),
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }

    fn sink(&self) -> Arc<Sink> {
        self.sink.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Queues `audio` after whatever is playing. Empty buffers are ignored.
    pub fn play(&self, audio: AudioBuffer) -> Result<(), TtsError> {
        if audio.samples.is_empty() {
            return Ok(());
        }
        if audio.sample_rate == 0 {
            return Err(TtsError::InvalidAudio("sample rate 0".into()));
        }
        self.sink()
            .append(SamplesBuffer::new(1, audio.sample_rate, audio.samples));
        Ok(())
    }

    /// Cuts the current and all queued audio now. The player stays usable.
    pub fn stop(&self) -> Result<(), TtsError> {
        let fresh =
            Arc::new(Sink::try_new(&self.handle).map_err(|e| TtsError::NoDevice(e.to_string()))?);
        let old = {
            let mut guard = self.sink.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *guard, fresh)
        };
        old.stop();
        old.clear();
        Ok(())
    }

    /// Whether audio is playing or queued.
    pub fn is_playing(&self) -> bool {
        !self.sink().empty()
    }

    /// How far the buffer playing now has got. It starts at zero after [`Player::new`] and
    /// [`Player::stop`]; when a buffer ends it keeps that buffer's length until the next one
    /// starts.
    pub fn position(&self) -> Duration {
        self.sink().get_pos()
    }

    /// Blocks until everything queued has played (or was stopped).
    pub fn wait_until_done(&self) {
        while self.is_playing() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Like [`Self::wait_until_done`] with a limit; returns whether playback finished.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.is_playing() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.sink().stop();
        self.shutdown.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes `audio` as a mono 16-bit PCM WAV file.
pub fn write_wav(path: &Path, audio: &AudioBuffer) -> Result<(), TtsError> {
    let err = |e: hound::Error| TtsError::AudioFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if audio.sample_rate == 0 {
        return Err(TtsError::InvalidAudio("sample rate 0".into()));
    }
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: audio.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(err)?;
    for &s in &audio.samples {
        let s = if s.is_finite() {
            s.clamp(-1.0, 1.0)
        } else {
            0.0
        };
        w.write_sample((s * 32767.0).round() as i16).map_err(err)?;
    }
    w.finalize().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        let audio = AudioBuffer {
            sample_rate: 22050,
            samples: vec![0.0, 0.5, -1.0, 2.0, f32::NAN],
        };
        write_wav(&p, &audio).unwrap();
        let r = hound::WavReader::open(&p).unwrap();
        assert_eq!(r.spec().sample_rate, 22050);
        assert_eq!(r.spec().channels, 1);
        let s: Vec<i16> = r.into_samples().map(Result::unwrap).collect();
        assert_eq!(s, vec![0, 16384, -32767, 32767, 0]);
        let e = write_wav(&dir.path().join("no/such/dir.wav"), &audio).unwrap_err();
        assert!(e.to_string().contains("dir.wav"), "{e}");
    }
}
