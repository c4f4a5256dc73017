//! [`Segmenter`]: cuts utterances out of a stream of 16 kHz audio frames from their
//! per-frame speech probabilities. Pure: no I/O, no clock; time is counted in samples.

use std::collections::VecDeque;

/// Sample rate the segmenter counts time in.
pub const SAMPLE_RATE: u32 = 16_000;

/// Tuning of the [`Segmenter`]. Times are in milliseconds of audio.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmenterConfig {
    /// A frame at or above this probability counts towards starting an utterance.
    pub start_threshold: f32,
    /// Consecutive frames at or above `start_threshold` needed to start.
    pub start_frames: usize,
    /// Inside an utterance, a frame below this probability counts as silence.
    pub end_threshold: f32,
    /// Silence that ends an utterance.
    pub end_silence_ms: u32,
    /// Audio kept before the first speech frame.
    pub pre_roll_ms: u32,
    /// Audio kept after the last speech frame.
    pub post_roll_ms: u32,
    /// Utterances with less speech than this are dropped (no event at all).
    pub min_speech_ms: u32,
    /// Longest utterance: a longer one is cut here and a new one continues at once.
    pub max_utterance_ms: u32,
    /// How often a [`SegmentEvent::Speech`] progress event is emitted during an utterance.
    pub progress_every_ms: u32,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        Self {
            start_threshold: 0.5,
            start_frames: 2,
            end_threshold: 0.35,
            end_silence_ms: 600,
            pre_roll_ms: 200,
            post_roll_ms: 100,
            min_speech_ms: 250,
            max_utterance_ms: 30_000,
            progress_every_ms: 500,
        }
    }
}

/// What the segmenter found.
#[derive(Debug, Clone, PartialEq)]
pub enum SegmentEvent {
    /// An utterance began (emitted once it holds at least `min_speech_ms` of speech, so a
    /// started utterance always ends with [`SegmentEvent::SpeechEnded`]).
    SpeechStarted {
        /// Where the utterance (pre-roll included) starts, in ms from the stream's start.
        start_ms: u64,
    },
    /// The utterance goes on; [`Segmenter::current_utterance`] holds its audio so far
    /// (for partial transcripts).
    Speech {
        /// Samples in the utterance so far.
        samples_so_far: usize,
    },
    /// An utterance is complete.
    SpeechEnded {
        /// Its 16 kHz mono samples, pre-roll and post-roll included.
        utterance: Vec<f32>,
        /// Its start in ms from the stream's start.
        start_ms: u64,
        /// Its end in ms from the stream's start.
        end_ms: u64,
    },
}

#[derive(Debug)]
enum State {
    Idle,
    InSpeech {
        /// Absolute sample index of `utterance[0]`.
        start: u64,
        /// Absolute sample index just after the last speech frame.
        last_speech_end: u64,
        /// Samples of speech (frames at or above the end threshold).
        speech_samples: u64,
        /// Whether `SpeechStarted` was emitted.
        confirmed: bool,
        /// Samples of silence since the last speech frame.
        silence: u64,
        /// Utterance length at the last progress event.
        last_progress: usize,
    },
}

/// The utterance state machine. Feed it every frame with [`Segmenter::push`] and call
/// [`Segmenter::finish`] at the end of a finite stream.
#[derive(Debug)]
pub struct Segmenter {
    config: SegmenterConfig,
    state: State,
    /// Recent frames (absolute start index, samples), for the pre-roll.
    recent: VecDeque<(u64, Vec<f32>)>,
    /// Consecutive frames at or above the start threshold while idle.
    run: usize,
    utterance: Vec<f32>,
    /// Absolute sample index of the next frame.
    pos: u64,
}

fn ms_to_samples(ms: u32) -> u64 {
    u64::from(ms) * u64::from(SAMPLE_RATE) / 1000
}

fn samples_to_ms(n: u64) -> u64 {
    n * 1000 / u64::from(SAMPLE_RATE)
}

impl Segmenter {
    /// A segmenter with the given tuning.
    pub fn new(config: SegmenterConfig) -> Self {
        Self {
            config,
            state: State::Idle,
            recent: VecDeque::new(),
            run: 0,
            utterance: Vec::new(),
            pos: 0,
        }
    }

    /// The tuning.
    pub fn config(&self) -> &SegmenterConfig {
        &self.config
    }

    /// Whether an utterance is in progress (confirmed or not).
    pub fn in_speech(&self) -> bool {
        matches!(self.state, State::InSpeech { .. })
    }

    /// The audio of the utterance in progress (empty when idle).
    pub fn current_utterance(&self) -> &[f32] {
        &self.utterance
    }

    /// Position of the next frame, in ms from the stream's start.
    pub fn position_ms(&self) -> u64 {
        samples_to_ms(self.pos)
    }

    /// Forgets everything, as at the start of a new stream.
    pub fn reset(&mut self) {
        *self = Self::new(self.config.clone());
    }

    /// Feeds one frame of 16 kHz samples with its speech probability; returns the events it
    /// causes, in order.
    pub fn push(&mut self, frame: &[f32], probability: f32) -> Vec<SegmentEvent> {
        let mut events = Vec::new();
        let frame_start = self.pos;
        let frame_end = frame_start + frame.len() as u64;
        self.pos = frame_end;
        let c = self.config.clone();
        match &mut self.state {
            State::Idle => {
                self.run = if probability >= c.start_threshold {
                    self.run + 1
                } else {
                    0
                };
                self.recent.push_back((frame_start, frame.to_vec()));
                if self.run >= c.start_frames.max(1) {
                    // The first frame of the run is `run - 1` frames back; keep the
                    // pre-roll before it.
                    let run_start_idx = self.recent.len() - self.run;
                    let run_start = self.recent[run_start_idx].0;
                    let pre = ms_to_samples(c.pre_roll_ms);
                    let from = run_start.saturating_sub(pre);
                    self.utterance.clear();
                    let mut start = None;
                    for (at, samples) in &self.recent {
                        let end = at + samples.len() as u64;
                        if end <= from {
                            continue;
                        }
                        let skip = from.saturating_sub(*at) as usize;
                        start.get_or_insert(at + skip as u64);
                        self.utterance.extend_from_slice(&samples[skip..]);
                    }
                    let run_samples = frame_end - run_start;
                    self.recent.clear();
                    self.run = 0;
                    self.state = State::InSpeech {
                        start: start.unwrap_or(run_start),
                        last_speech_end: frame_end,
                        speech_samples: run_samples,
                        confirmed: false,
                        silence: 0,
                        last_progress: 0,
                    };
                    self.check_confirmed(&mut events);
                } else {
                    self.trim_recent();
                }
            }
            State::InSpeech {
                last_speech_end,
                speech_samples,
                silence,
                ..
            } => {
                self.utterance.extend_from_slice(frame);
                if probability >= c.end_threshold {
                    *last_speech_end = frame_end;
                    *speech_samples += frame.len() as u64;
                    *silence = 0;
                } else {
                    *silence += frame.len() as u64;
                }
                let ended = *silence >= ms_to_samples(c.end_silence_ms);
                self.check_confirmed(&mut events);
                if ended {
                    self.end_utterance(&mut events);
                    // The trailing silence stays available as pre-roll of the next one.
                    self.recent.push_back((frame_start, frame.to_vec()));
                } else {
                    self.progress(&mut events);
                }
            }
        }
        events
    }

    /// Ends the stream: an utterance in progress is closed (or dropped when too short).
    pub fn finish(&mut self) -> Vec<SegmentEvent> {
        let mut events = Vec::new();
        if self.in_speech() {
            self.end_utterance(&mut events);
        }
        events
    }

    fn trim_recent(&mut self) {
        let keep = ms_to_samples(self.config.pre_roll_ms)
            + self.recent.back().map_or(0, |f| f.1.len() as u64) * self.config.start_frames as u64;
        while let (Some(first), Some(last)) = (self.recent.front(), self.recent.back()) {
            let span = last.0 + last.1.len() as u64 - first.0;
            if span - first.1.len() as u64 >= keep {
                self.recent.pop_front();
            } else {
                break;
            }
        }
    }

    fn check_confirmed(&mut self, events: &mut Vec<SegmentEvent>) {
        if let State::InSpeech {
            start,
            speech_samples,
            confirmed,
            ..
        } = &mut self.state
        {
            if !*confirmed && *speech_samples >= ms_to_samples(self.config.min_speech_ms) {
                *confirmed = true;
                events.push(SegmentEvent::SpeechStarted {
                    start_ms: samples_to_ms(*start),
                });
            }
        }
    }

    fn progress(&mut self, events: &mut Vec<SegmentEvent>) {
        let every = ms_to_samples(self.config.progress_every_ms).max(1) as usize;
        let max = ms_to_samples(self.config.max_utterance_ms) as usize;
        let len = self.utterance.len();
        if let State::InSpeech {
            confirmed: true,
            last_progress,
            ..
        } = &mut self.state
        {
            if len >= *last_progress + every {
                *last_progress = len;
                events.push(SegmentEvent::Speech {
                    samples_so_far: len,
                });
            }
        }
        if len >= max {
            self.cut(events);
        }
    }

    /// The utterance reached the maximum length: close it and start the next one at once.
    fn cut(&mut self, events: &mut Vec<SegmentEvent>) {
        let State::InSpeech {
            start, confirmed, ..
        } = self.state
        else {
            return;
        };
        let max = ms_to_samples(self.config.max_utterance_ms) as usize;
        let rest = self.utterance.split_off(max.min(self.utterance.len()));
        let utterance = std::mem::replace(&mut self.utterance, rest);
        let end = start + utterance.len() as u64;
        if confirmed {
            events.push(SegmentEvent::SpeechEnded {
                start_ms: samples_to_ms(start),
                end_ms: samples_to_ms(end),
                utterance,
            });
        }
        let speech = self.utterance.len() as u64;
        self.state = State::InSpeech {
            start: end,
            last_speech_end: end + speech,
            speech_samples: speech,
            confirmed: false,
            silence: 0,
            last_progress: 0,
        };
        // Speech is going on: the continuation is confirmed at once.
        if confirmed {
            if let State::InSpeech { confirmed, .. } = &mut self.state {
                *confirmed = true;
            }
            events.push(SegmentEvent::SpeechStarted {
                start_ms: samples_to_ms(end),
            });
        }
    }

    fn end_utterance(&mut self, events: &mut Vec<SegmentEvent>) {
        let State::InSpeech {
            start,
            last_speech_end,
            confirmed,
            ..
        } = self.state
        else {
            return;
        };
        self.state = State::Idle;
        self.run = 0;
        let mut utterance = std::mem::take(&mut self.utterance);
        let end = (last_speech_end + ms_to_samples(self.config.post_roll_ms))
            .min(start + utterance.len() as u64);
        utterance.truncate((end - start) as usize);
        if confirmed {
            events.push(SegmentEvent::SpeechEnded {
                utterance,
                start_ms: samples_to_ms(start),
                end_ms: samples_to_ms(end),
            });
        }
    }
}

impl Default for Segmenter {
    fn default() -> Self {
        Self::new(SegmenterConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: usize = 512; // 32 ms

    /// Runs probabilities through a segmenter; frame i holds the value i as its samples so
    /// utterance contents can be checked.
    fn run(config: SegmenterConfig, probs: &[f32]) -> Vec<SegmentEvent> {
        let mut s = Segmenter::new(config);
        let mut events = Vec::new();
        for (i, &p) in probs.iter().enumerate() {
            events.extend(s.push(&[i as f32; F], p));
        }
        events.extend(s.finish());
        events
    }

    fn ended(events: &[SegmentEvent]) -> Vec<(u64, u64, usize, f32)> {
        events
            .iter()
            .filter_map(|e| match e {
                SegmentEvent::SpeechEnded {
                    utterance,
                    start_ms,
                    end_ms,
                } => Some((*start_ms, *end_ms, utterance.len(), utterance[0])),
                _ => None,
            })
            .collect()
    }

    fn probs(parts: &[(f32, usize)]) -> Vec<f32> {
        parts
            .iter()
            .flat_map(|&(p, n)| std::iter::repeat_n(p, n))
            .collect()
    }

    #[test]
    fn one_utterance_with_pre_and_post_roll() {
        // 1 s silence (31 frames), 1 s speech (31 frames), 1 s silence.
        let p = probs(&[(0.05, 31), (0.9, 31), (0.05, 31)]);
        let ev = run(SegmenterConfig::default(), &p);
        let ends = ended(&ev);
        assert_eq!(ends.len(), 1, "{ev:?}");
        let (start, end, len, first) = ends[0];
        // Speech starts at frame 31 = 992 ms; 200 ms pre-roll -> 792 ms.
        assert_eq!(start, 792);
        assert_eq!(first, 24.0); // frame 24 covers 768..800 ms, the 792 ms sample.
                                 // Speech ends at frame 62 = 1984 ms; +100 ms post-roll.
        assert_eq!(end, 2084);
        assert_eq!(len as u64, (end - start) * 16);
        assert!(matches!(
            ev[0],
            SegmentEvent::SpeechStarted { start_ms: 792 }
        ));
        assert!(ev.iter().any(|e| matches!(e, SegmentEvent::Speech { .. })));
    }

    #[test]
    fn a_single_loud_frame_does_not_start() {
        let p = probs(&[(0.0, 10), (0.9, 1), (0.0, 10), (0.9, 1), (0.0, 40)]);
        assert!(run(SegmenterConfig::default(), &p).is_empty());
    }

    #[test]
    fn short_blips_are_dropped_silently() {
        // 5 frames = 160 ms of speech < 250 ms.
        let p = probs(&[(0.0, 20), (0.9, 5), (0.0, 40)]);
        assert!(run(SegmenterConfig::default(), &p).is_empty());
        // 8 frames = 256 ms is kept.
        let p = probs(&[(0.0, 20), (0.9, 8), (0.0, 40)]);
        assert_eq!(ended(&run(SegmenterConfig::default(), &p)).len(), 1);
    }

    #[test]
    fn pauses_shorter_than_end_silence_stay_in_one_utterance() {
        // 500 ms pause (15 frames) < 600 ms; then 700 ms pause (22 frames) splits.
        let p = probs(&[
            (0.0, 10),
            (0.9, 20),
            (0.1, 15),
            (0.9, 20),
            (0.1, 22),
            (0.9, 20),
            (0.0, 30),
        ]);
        let ends = ended(&run(SegmenterConfig::default(), &p));
        assert_eq!(ends.len(), 2, "{ends:?}");
    }

    #[test]
    fn hysteresis_between_thresholds_keeps_speech_going() {
        // 0.4 is below the start threshold but above the end threshold.
        let p = probs(&[(0.0, 10), (0.9, 5), (0.4, 60), (0.0, 30)]);
        let ends = ended(&run(SegmenterConfig::default(), &p));
        assert_eq!(ends.len(), 1);
        // Never starts on 0.4 alone.
        assert!(run(SegmenterConfig::default(), &probs(&[(0.4, 100)])).is_empty());
    }

    #[test]
    fn long_speech_is_cut_at_the_cap_and_continues() {
        let config = SegmenterConfig {
            max_utterance_ms: 2_000,
            ..Default::default()
        };
        // 5 s of speech.
        let p = probs(&[(0.0, 10), (0.9, 157), (0.0, 30)]);
        let ev = run(config, &p);
        let ends = ended(&ev);
        assert!(ends.len() >= 3, "{ends:?}");
        for w in ends.windows(2) {
            assert_eq!(w[0].1, w[1].0, "pieces are contiguous");
        }
        for e in &ends[..ends.len() - 1] {
            assert_eq!(e.2, 32_000);
        }
        let starts = ev
            .iter()
            .filter(|e| matches!(e, SegmentEvent::SpeechStarted { .. }))
            .count();
        assert_eq!(starts, ends.len());
    }

    #[test]
    fn speech_at_the_very_start_has_no_pre_roll_and_finish_closes_it() {
        let p = probs(&[(0.9, 20)]);
        let ends = ended(&run(SegmenterConfig::default(), &p));
        assert_eq!(ends.len(), 1);
        assert_eq!(ends[0].0, 0);
        assert_eq!(ends[0].1, 640);
    }

    #[test]
    fn started_and_ended_pair_up() {
        let p = probs(&[
            (0.0, 5),
            (0.9, 3),
            (0.0, 30),
            (0.9, 30),
            (0.0, 30),
            (0.8, 12),
            (0.0, 3),
        ]);
        let ev = run(SegmenterConfig::default(), &p);
        let mut open = false;
        for e in &ev {
            match e {
                SegmentEvent::SpeechStarted { .. } => {
                    assert!(!open);
                    open = true;
                }
                SegmentEvent::Speech { .. } => assert!(open),
                SegmentEvent::SpeechEnded { .. } => {
                    assert!(open);
                    open = false;
                }
            }
        }
        assert!(!open);
        assert_eq!(ended(&ev).len(), 2);
    }
}
