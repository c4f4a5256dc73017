//! [`Microphone`]: recording from an input device with `cpal`.
//!
//! The stream is opened and owned by a dedicated thread (cpal streams cannot move between
//! threads); cpal's callback thread downmixes each buffer to mono and pushes it into a
//! lock-free single-producer single-consumer ring buffer (`ringbuf`). [`Microphone::read`]
//! drains the ring and converts the audio to 16 kHz with rubato's FFT resampler.

use crate::error::{Result, SpeechInputError};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SizedSample};
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapRb};
use rubato::audioadapter_buffers::direct::SequentialSlice;
use rubato::{Fft, FixedSync, Resampler};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Rate of the samples [`Microphone::read`] returns.
pub const CAPTURE_RATE: u32 = 16_000;
/// Seconds of device audio the ring buffer holds between reads; older audio is dropped
/// when the reader falls behind.
pub const RING_SECONDS: u32 = 10;
/// Default time without any audio after which a stream counts as lost.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Default)]
struct Shared {
    lost: AtomicBool,
    reason: Mutex<Option<String>>,
    level: AtomicU32,
    frames: AtomicU64,
    dropped: AtomicU64,
}

impl Shared {
    fn mark_lost(&self, reason: String) {
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert(reason);
        }
        self.lost.store(true, Ordering::SeqCst);
    }
}

struct Opened {
    name: String,
    rate: u32,
    channels: u16,
    consumer: HeapCons<f32>,
}

/// A running microphone stream. Dropping it stops the stream.
pub struct Microphone {
    name: String,
    device_rate: u32,
    device_channels: u16,
    consumer: HeapCons<f32>,
    shared: Arc<Shared>,
    resampler: Option<StreamResampler>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    raw: Vec<f32>,
    last_frames: u64,
    last_change: Instant,
    stall_timeout: Duration,
}

impl std::fmt::Debug for Microphone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Microphone")
            .field("name", &self.name)
            .field("device_rate", &self.device_rate)
            .field("device_channels", &self.device_channels)
            .finish_non_exhaustive()
    }
}

fn input_names(host: &cpal::Host) -> Vec<String> {
    host.input_devices()
        .map(|devs| devs.filter_map(|d| d.name().ok()).collect())
        .unwrap_or_default()
}

impl Microphone {
    /// Names of the input devices of the default audio host.
    pub fn devices() -> Result<Vec<String>> {
        let host = cpal::default_host();
        let devs = host
            .input_devices()
            .map_err(|e| SpeechInputError::NoAudioSystem {
                reason: e.to_string(),
            })?;
        Ok(devs.filter_map(|d| d.name().ok()).collect())
    }

    /// Opens and starts an input device: `None` is the system's default input, `Some(name)`
    /// one of [`Microphone::devices`]. A missing device or audio system gives an error that
    /// lists the devices there are.
    pub fn open(device: Option<&str>) -> Result<Self> {
        let shared = Arc::new(Shared::default());
        let (ready_tx, ready_rx) = mpsc::channel::<Result<Opened>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let wanted = device.map(str::to_owned);
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("baton-microphone".into())
            .spawn(move || match start_stream(wanted.as_deref(), sh) {
                Ok((stream, opened)) => {
                    if ready_tx.send(Ok(opened)).is_ok() {
                        // Wait until the Microphone is dropped (or the device lost).
                        let _ = stop_rx.recv();
                    }
                    drop(stream);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| SpeechInputError::NoAudioSystem {
                reason: format!("cannot start the audio thread: {e}"),
            })?;
        let opened = match ready_rx.recv() {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(SpeechInputError::NoAudioSystem {
                    reason: "the audio thread stopped while opening the device".into(),
                });
            }
        };
        let resampler = if opened.rate == CAPTURE_RATE {
            None
        } else {
            Some(StreamResampler::new(opened.rate, CAPTURE_RATE)?)
        };
        Ok(Self {
            name: opened.name,
            device_rate: opened.rate,
            device_channels: opened.channels,
            consumer: opened.consumer,
            shared,
            resampler,
            stop: Some(stop_tx),
            thread: Some(thread),
            raw: Vec::new(),
            last_frames: 0,
            last_change: Instant::now(),
            stall_timeout: DEFAULT_STALL_TIMEOUT,
        })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rate the device records at (before resampling to 16 kHz).
    pub fn device_rate(&self) -> u32 {
        self.device_rate
    }

    /// The channels the device records (mixed down to mono).
    pub fn device_channels(&self) -> u16 {
        self.device_channels
    }

    /// Device frames dropped because the ring buffer was full (reads came too rarely).
    pub fn dropped_frames(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// How long the stream may deliver nothing before [`Microphone::read`] reports it lost
    /// (default [`DEFAULT_STALL_TIMEOUT`]).
    pub fn set_stall_timeout(&mut self, timeout: Duration) {
        self.stall_timeout = timeout;
    }

    /// RMS of the last ~50 ms of input (0 = silence, 1 = full scale), for a level meter.
    pub fn level(&self) -> f32 {
        f32::from_bits(self.shared.level.load(Ordering::Relaxed))
    }

    /// The 16 kHz mono samples captured since the last read. Waits up to `timeout` for
    /// audio to arrive and returns an empty vector when none did. When the device has gone
    /// (unplugged, its server source removed, or no audio for the stall timeout) the stream
    /// is stopped and [`SpeechInputError::DeviceLost`] is returned, now and on every later
    /// call.
    pub fn read(&mut self, timeout: Duration) -> Result<Vec<f32>> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            self.check_lost()?;
            let available = self.consumer.occupied_len();
            if available > 0 {
                self.raw.resize(available, 0.0);
                let got = self.consumer.pop_slice(&mut self.raw);
                self.raw.truncate(got);
                match &mut self.resampler {
                    Some(r) => r.push(&self.raw, &mut out)?,
                    None => out.extend_from_slice(&self.raw),
                }
            }
            let frames = self.shared.frames.load(Ordering::Relaxed);
            if frames != self.last_frames {
                self.last_frames = frames;
                self.last_change = Instant::now();
            } else if self.last_change.elapsed() >= self.stall_timeout {
                self.shared.mark_lost(format!(
                    "no audio arrived for {:.1} s",
                    self.last_change.elapsed().as_secs_f32()
                ));
                self.check_lost()?;
            }
            let now = Instant::now();
            if !out.is_empty() || now >= deadline {
                return Ok(out);
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(5)));
        }
    }

    fn check_lost(&mut self) -> Result<()> {
        if !self.shared.lost.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.stop_stream();
        let reason = self
            .shared
            .reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or_else(|| "the stream stopped".into());
        Err(SpeechInputError::DeviceLost {
            device: self.name.clone(),
            reason,
        })
    }

    fn stop_stream(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Microphone {
    fn drop(&mut self) {
        self.stop_stream();
    }
}

fn start_stream(wanted: Option<&str>, shared: Arc<Shared>) -> Result<(cpal::Stream, Opened)> {
    let host = cpal::default_host();
    let device = match wanted {
        None => host
            .default_input_device()
            .ok_or_else(|| SpeechInputError::NoInputDevice {
                available: input_names(&host),
            })?,
        Some(name) => {
            let devices = host
                .input_devices()
                .map_err(|e| SpeechInputError::NoAudioSystem {
                    reason: e.to_string(),
                })?;
            let mut found = None;
            for d in devices {
                if d.name().ok().as_deref() == Some(name) {
                    found = Some(d);
                    break;
                }
            }
            found.ok_or_else(|| SpeechInputError::DeviceNotFound {
                name: name.to_owned(),
                available: input_names(&host),
            })?
        }
    };
    let name = device
        .name()
        .unwrap_or_else(|_| wanted.unwrap_or("default").to_owned());
    let failed = |reason: String| SpeechInputError::StreamFailed {
        device: name.clone(),
        reason,
        available: input_names(&host),
    };
    let supported = device
        .default_input_config()
        .map_err(|e| failed(e.to_string()))?;
    let config: cpal::StreamConfig = supported.config();
    let rate = config.sample_rate.0;
    let channels = config.channels;
    if rate == 0 || channels == 0 {
        return Err(failed(format!(
            "the device reports {rate} Hz with {channels} channels"
        )));
    }
    let (producer, consumer) = HeapRb::<f32>::new((rate * RING_SECONDS) as usize).split();
    use cpal::SampleFormat as F;
    let stream = match supported.sample_format() {
        F::F32 => build::<f32>(&device, &config, producer, shared),
        F::F64 => build::<f64>(&device, &config, producer, shared),
        F::I16 => build::<i16>(&device, &config, producer, shared),
        F::I32 => build::<i32>(&device, &config, producer, shared),
        F::I8 => build::<i8>(&device, &config, producer, shared),
        F::U8 => build::<u8>(&device, &config, producer, shared),
        F::U16 => build::<u16>(&device, &config, producer, shared),
        F::U32 => build::<u32>(&device, &config, producer, shared),
        other => {
            return Err(failed(format!("unsupported sample format {other:?}")));
        }
    }
    .map_err(|e| failed(e.to_string()))?;
    stream.play().map_err(|e| failed(e.to_string()))?;
    Ok((
        stream,
        Opened {
            name,
            rate,
            channels,
            consumer,
        },
    ))
}

fn build<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    mut producer: ringbuf::HeapProd<f32>,
    shared: Arc<Shared>,
) -> std::result::Result<cpal::Stream, cpal::BuildStreamError>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = usize::from(config.channels);
    let window = (config.sample_rate.0 / 20).max(1) as usize; // 50 ms
    let mut scratch: Vec<f32> = Vec::with_capacity(16_384);
    let (mut acc, mut n) = (0f64, 0usize);
    let data_shared = shared.clone();
    device.build_input_stream(
        config,
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            scratch.clear();
            let scale = 1.0 / channels as f32;
            for frame in data.chunks_exact(channels) {
                let s = frame.iter().map(|&x| f32::from_sample_(x)).sum::<f32>() * scale;
                scratch.push(s);
                acc += f64::from(s) * f64::from(s);
                n += 1;
                if n >= window {
                    let rms = (acc / n as f64).sqrt() as f32;
                    data_shared.level.store(rms.to_bits(), Ordering::Relaxed);
                    acc = 0.0;
                    n = 0;
                }
            }
            let pushed = producer.push_slice(&scratch);
            data_shared
                .dropped
                .fetch_add((scratch.len() - pushed) as u64, Ordering::Relaxed);
            data_shared
                .frames
                .fetch_add(scratch.len() as u64, Ordering::Relaxed);
        },
        move |err: cpal::StreamError| {
            shared.mark_lost(err.to_string());
        },
        None,
    )
}

/// Streaming mono resampler over rubato's FFT resampler: takes any number of samples,
/// returns what full chunks produce, with the resampler's start-up delay trimmed.
struct StreamResampler {
    from: u32,
    to: u32,
    inner: Fft<f32>,
    pending: Vec<f32>,
    out: Vec<f32>,
    skip: usize,
}

impl StreamResampler {
    fn new(from: u32, to: u32) -> Result<Self> {
        let inner = Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Input)
            .map_err(|e| SpeechInputError::Resample {
                from,
                to,
                reason: e.to_string(),
            })?;
        let skip = inner.output_delay();
        Ok(Self {
            from,
            to,
            out: vec![0.0; inner.output_frames_max()],
            inner,
            pending: Vec::new(),
            skip,
        })
    }

    fn push(&mut self, input: &[f32], dst: &mut Vec<f32>) -> Result<()> {
        let err = |reason: String| SpeechInputError::Resample {
            from: self.from,
            to: self.to,
            reason,
        };
        self.pending.extend_from_slice(input);
        let mut offset = 0;
        loop {
            let need = self.inner.input_frames_next();
            if self.pending.len() - offset < need {
                break;
            }
            let chunk = &self.pending[offset..offset + need];
            let input = SequentialSlice::new(chunk, 1, need).map_err(|e| err(e.to_string()))?;
            let max = self.out.len();
            let mut output =
                SequentialSlice::new_mut(&mut self.out, 1, max).map_err(|e| err(e.to_string()))?;
            let (_, produced) = self
                .inner
                .process_into_buffer(&input, &mut output, None)
                .map_err(|e| err(e.to_string()))?;
            offset += need;
            let skip = self.skip.min(produced);
            self.skip -= skip;
            dst.extend_from_slice(&self.out[skip..produced]);
        }
        self.pending.drain(..offset);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_resampler_matches_the_rate() {
        let mut r = StreamResampler::new(48_000, 16_000).unwrap();
        let tone: Vec<f32> = (0..48_000 * 2)
            .map(|i| (i as f32 * 300.0 * std::f32::consts::TAU / 48_000.0).sin() * 0.5)
            .collect();
        let mut out = Vec::new();
        for chunk in tone.chunks(441) {
            r.push(chunk, &mut out).unwrap();
        }
        // Everything but the last partial chunk and the trimmed delay comes out.
        assert!(out.len() > 31_000 && out.len() <= 32_000, "{}", out.len());
        let peak = out[2000..30_000].iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!((peak - 0.5).abs() < 0.02, "{peak}");
    }
}
