//! [`Listener`]: a sample source (the [`Microphone`], or anything else) run through voice
//! activity detection and the [`Segmenter`], as a stream of [`ListenEvent`]s.

use crate::capture::Microphone;
use crate::error::Result;
use crate::segment::{SegmentEvent, Segmenter};
use crate::vad::{SileroVad, VoiceDetector, FRAME_SAMPLES};
use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

/// Samples of 16 kHz audio between two [`ListenEvent::Level`] events (50 ms).
const LEVEL_EVERY: usize = 800;

/// Where a [`Listener`] gets its 16 kHz mono audio.
pub trait SampleSource: Send {
    /// The samples available now, waiting up to `timeout` for some (empty when none came).
    fn read(&mut self, timeout: Duration) -> Result<Vec<f32>>;
    /// RMS of the most recent ~50 ms.
    fn level(&self) -> f32;
    /// Whether the source has ended for good (a file does; a microphone never does).
    fn is_finished(&self) -> bool {
        false
    }
}

impl SampleSource for Microphone {
    fn read(&mut self, timeout: Duration) -> Result<Vec<f32>> {
        Microphone::read(self, timeout)
    }

    fn level(&self) -> f32 {
        Microphone::level(self)
    }
}

/// Audio already in memory (16 kHz mono), handed out in chunks as fast as it is read, e.g. a
/// decoded file run through the same path as a microphone.
#[derive(Debug, Clone)]
pub struct BufferSource {
    samples: Vec<f32>,
    pos: usize,
    chunk: usize,
    level: f32,
}

impl BufferSource {
    /// A source over `samples` (16 kHz mono), read 1600 samples (100 ms) at a time.
    pub fn new(samples: Vec<f32>) -> Self {
        Self {
            samples,
            pos: 0,
            chunk: 1600,
            level: 0.0,
        }
    }

    /// Changes how many samples each read returns (at least 1).
    pub fn with_chunk(mut self, chunk: usize) -> Self {
        self.chunk = chunk.max(1);
        self
    }
}

impl SampleSource for BufferSource {
    fn read(&mut self, _timeout: Duration) -> Result<Vec<f32>> {
        let end = (self.pos + self.chunk).min(self.samples.len());
        let out = self.samples[self.pos..end].to_vec();
        self.pos = end;
        if !out.is_empty() {
            self.level = crate::rms(&out[out.len().saturating_sub(LEVEL_EVERY)..]);
        }
        Ok(out)
    }

    fn level(&self) -> f32 {
        self.level
    }

    fn is_finished(&self) -> bool {
        self.pos >= self.samples.len()
    }
}

/// What a [`Listener`] reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ListenEvent {
    /// The input level (RMS of the last ~50 ms), about every 50 ms of audio.
    Level(f32),
    /// The segmenter found something; `level` is the input level at that moment.
    Segment {
        /// What was found.
        event: SegmentEvent,
        /// The input level.
        level: f32,
    },
}

/// Microphone (or any [`SampleSource`]) + voice activity detector + [`Segmenter`].
pub struct Listener {
    source: Box<dyn SampleSource>,
    vad: Box<dyn VoiceDetector>,
    segmenter: Segmenter,
    frame: Vec<f32>,
    queue: VecDeque<ListenEvent>,
    since_level: usize,
    last_probability: f32,
    finished: bool,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("segmenter", &self.segmenter)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// Listens to an input device (`None`: the default one) with the Silero model at
    /// `vad_model` and the default segmenter tuning.
    pub fn open(device: Option<&str>, vad_model: &Path) -> Result<Self> {
        let vad = SileroVad::load(vad_model)?;
        let mic = Microphone::open(device)?;
        Ok(Self::new(
            Box::new(mic),
            Box::new(vad),
            Segmenter::default(),
        ))
    }

    /// Listens to any source with any detector: how tests feed a file through the same
    /// path as the microphone.
    pub fn new(
        source: Box<dyn SampleSource>,
        vad: Box<dyn VoiceDetector>,
        segmenter: Segmenter,
    ) -> Self {
        Self {
            source,
            vad,
            segmenter,
            frame: Vec::with_capacity(FRAME_SAMPLES),
            queue: VecDeque::new(),
            since_level: 0,
            last_probability: 0.0,
            finished: false,
        }
    }

    /// The audio of the utterance in progress (for partial transcripts).
    pub fn current_utterance(&self) -> &[f32] {
        self.segmenter.current_utterance()
    }

    /// The speech probability of the last frame.
    pub fn last_probability(&self) -> f32 {
        self.last_probability
    }

    /// The segmenter (its tuning and position).
    pub fn segmenter(&self) -> &Segmenter {
        &self.segmenter
    }

    /// The next event, waiting up to `timeout` for one. `Ok(None)` when none came in time,
    /// and for good once a finite source has ended and its last utterance was reported.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<ListenEvent>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Ok(Some(e));
            }
            if self.finished {
                return Ok(None);
            }
            let now = Instant::now();
            let samples = self.source.read(deadline.saturating_duration_since(now))?;
            self.process(&samples)?;
            if samples.is_empty() && self.source.is_finished() {
                self.finish();
            }
            if self.queue.is_empty() && Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    fn process(&mut self, samples: &[f32]) -> Result<()> {
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (FRAME_SAMPLES - self.frame.len()).min(rest.len());
            self.frame.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.frame.len() == FRAME_SAMPLES {
                let frame: &[f32; FRAME_SAMPLES] =
                    self.frame.as_slice().try_into().expect("frame is full");
                let p = self.vad.speech_probability(frame)?;
                self.last_probability = p;
                let level = self.source.level();
                for event in self.segmenter.push(&self.frame, p) {
                    self.queue.push_back(ListenEvent::Segment { event, level });
                }
                self.frame.clear();
            }
        }
        self.since_level += samples.len();
        if self.since_level >= LEVEL_EVERY {
            // One level event per read; a long read does not queue a backlog of them.
            self.since_level = (self.since_level - LEVEL_EVERY).min(LEVEL_EVERY - 1);
            self.queue
                .push_back(ListenEvent::Level(self.source.level()));
        }
        Ok(())
    }

    /// Ends the utterance in progress now, without waiting for silence (push-to-talk
    /// released): its [`SegmentEvent::SpeechEnded`] is the next event (none when it held
    /// too little speech). Listening goes on.
    pub fn end_utterance(&mut self) {
        let level = self.source.level();
        for event in self.segmenter.finish() {
            self.queue.push_back(ListenEvent::Segment { event, level });
        }
    }

    /// Whether events are queued that [`Listener::next_event`] returns without reading
    /// more audio (after [`Listener::end_utterance`]: the utterance's end).
    pub fn has_pending_events(&self) -> bool {
        !self.queue.is_empty()
    }

    fn finish(&mut self) {
        let level = self.source.level();
        for event in self.segmenter.finish() {
            self.queue.push_back(ListenEvent::Segment { event, level });
        }
        self.finished = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vad::EnergyVad;

    #[test]
    fn a_buffer_goes_through_the_same_path() {
        // 1 s silence, 1 s tone, 1 s silence.
        let mut samples = vec![0.0f32; 16_000];
        samples.extend((0..16_000).map(|i| (i as f32 * 0.1).sin() * 0.3));
        samples.extend(vec![0.0f32; 16_000]);
        let mut l = Listener::new(
            Box::new(BufferSource::new(samples).with_chunk(700)),
            Box::new(EnergyVad { threshold: 0.05 }),
            Segmenter::default(),
        );
        let mut ended = Vec::new();
        let mut levels = 0;
        while let Some(e) = l.next_event(Duration::from_millis(100)).unwrap() {
            match e {
                ListenEvent::Level(_) => levels += 1,
                ListenEvent::Segment {
                    event:
                        SegmentEvent::SpeechEnded {
                            start_ms, end_ms, ..
                        },
                    ..
                } => ended.push((start_ms, end_ms)),
                _ => {}
            }
        }
        assert_eq!(ended.len(), 1);
        let (s, e) = ended[0];
        assert!((750..=1000).contains(&s), "{s}");
        assert!((2000..=2150).contains(&e), "{e}");
        assert!(levels >= 50, "{levels}");
    }

    #[test]
    fn an_utterance_can_be_ended_before_the_silence() {
        // 0.5 s silence, then 3 s of tone: a push-to-talk key released after 1.5 s.
        let mut samples = vec![0.0f32; 8_000];
        samples.extend((0..48_000).map(|i| (i as f32 * 0.1).sin() * 0.3));
        let mut l = Listener::new(
            Box::new(BufferSource::new(samples).with_chunk(700)),
            Box::new(EnergyVad { threshold: 0.05 }),
            Segmenter::default(),
        );
        let mut ended = Vec::new();
        let mut cut = false;
        while let Some(e) = l.next_event(Duration::from_millis(100)).unwrap() {
            if !cut && l.segmenter().position_ms() >= 1_500 {
                l.end_utterance();
                assert!(l.has_pending_events(), "the cut utterance's end is queued");
                cut = true;
            }
            if let ListenEvent::Segment {
                event: SegmentEvent::SpeechEnded { end_ms, .. },
                ..
            } = e
            {
                ended.push(end_ms);
            }
        }
        assert!(cut);
        // The cut utterance ends where it was cut; the rest of the tone is a second one.
        assert_eq!(ended.len(), 2, "{ended:?}");
        assert!((1_400..=1_700).contains(&ended[0]), "{ended:?}");
    }
}
