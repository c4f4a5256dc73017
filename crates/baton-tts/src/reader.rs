//! [`Reader`]: reads streamed text aloud sentence by sentence, so speech starts with the
//! first complete sentence of an answer that is still being generated.

use crate::error::TtsError;
use crate::playback::Player;
use crate::splitter::SentenceSplitter;
use crate::voice::Voice;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

enum Piece {
    Text(String),
    Restart,
    End,
}

/// Reads text aloud on a thread of its own: [`Reader::push`] text as it arrives (tokens,
/// or a whole message), [`Reader::finish`] when there is no more, [`Reader::stop`] to cut
/// it at once. Sentences are synthesised and queued on the shared [`Player`] in order.
/// `Send + Sync`: share it between the task that streams text and the one that stops it.
pub struct Reader {
    tx: Mutex<mpsc::Sender<Piece>>,
    stopped: Arc<AtomicBool>,
    /// Bumped by [`Reader::restart`]: a sentence synthesised before it is not played.
    epoch: Arc<AtomicU64>,
    player: Arc<Player>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("stopped", &self.is_stopped())
            .finish_non_exhaustive()
    }
}

impl Reader {
    /// Starts reading with `voice` through `player`. A sentence that cannot be synthesised
    /// or played is reported to `on_error` and skipped; reading goes on.
    pub fn start(
        voice: Voice,
        player: Arc<Player>,
        on_error: impl Fn(TtsError) + Send + 'static,
    ) -> Reader {
        let (tx, rx) = mpsc::channel::<Piece>();
        let stopped = Arc::new(AtomicBool::new(false));
        let epoch = Arc::new(AtomicU64::new(0));
        let thread = {
            let shared = Shared {
                voice,
                player: player.clone(),
                stopped: stopped.clone(),
                epoch: epoch.clone(),
            };
            std::thread::Builder::new()
                .name("baton-tts-reader".into())
                .spawn(move || read(&shared, &rx, &on_error))
                .ok()
        };
        if thread.is_none() {
            stopped.store(true, Ordering::SeqCst);
        }
        Reader {
            tx: Mutex::new(tx),
            stopped,
            epoch,
            player,
            thread: Mutex::new(thread),
        }
    }

    fn send(&self, piece: Piece) {
        let _ = self
            .tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(piece);
    }

    /// Adds text to read (any piece: a token or a whole message).
    pub fn push(&self, text: &str) {
        self.send(Piece::Text(text.to_owned()));
    }

    /// The text so far is withdrawn (a fallback model answers from the start): what is
    /// playing stops, and reading goes on with the text pushed from now on.
    pub fn restart(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.send(Piece::Restart);
        let _ = self.player.stop();
    }

    /// No more text: the rest is read, then the reader is done.
    pub fn finish(&self) {
        self.send(Piece::End);
    }

    /// Cuts the reading now: queued sentences are dropped and playback stops.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.send(Piece::End);
        let _ = self.player.stop();
    }

    /// Whether [`Reader::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Blocks until everything was read (after [`Reader::finish`]) or the reading was
    /// stopped. Only the first caller waits; later calls return at once.
    pub fn wait(&self) {
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // Dropping without `finish` ends the text; the thread reads what it has and ends
        // by itself.
        self.send(Piece::End);
    }
}

/// What the reading thread holds.
struct Shared {
    voice: Voice,
    player: Arc<Player>,
    stopped: Arc<AtomicBool>,
    epoch: Arc<AtomicU64>,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    fn say(&self, sentence: &str, on_error: &dyn Fn(TtsError)) {
        if self.stopped() {
            return;
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let played = self.voice.synthesize(sentence).and_then(|audio| {
            // A stop or restart during synthesis must not let this sentence through.
            if self.stopped() || self.epoch.load(Ordering::SeqCst) != epoch {
                Ok(())
            } else {
                self.player.play(audio)
            }
        });
        if let Err(e) = played {
            on_error(e);
        }
    }
}

fn read(shared: &Shared, rx: &mpsc::Receiver<Piece>, on_error: &dyn Fn(TtsError)) {
    let mut splitter = SentenceSplitter::new();
    loop {
        match rx.recv() {
            Ok(Piece::Text(text)) => {
                for sentence in splitter.push(&text) {
                    shared.say(&sentence, on_error);
                }
            }
            Ok(Piece::Restart) => splitter = SentenceSplitter::new(),
            Ok(Piece::End) | Err(_) => break,
        }
    }
    if let Some(rest) = splitter.finish() {
        shared.say(&rest, on_error);
    }
    while shared.player.is_playing() && !shared.stopped() {
        std::thread::sleep(Duration::from_millis(20));
    }
}
