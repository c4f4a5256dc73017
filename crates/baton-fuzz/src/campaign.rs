//! Running cases: the input of case `n` of a campaign (a pure function of the campaign's
//! seed, the target and `n`, so any finding can be made again from three numbers), one
//! case run with its panics caught and its time and memory measured, and the watchdog that
//! ends the process when a case hangs.

use crate::alloc;
use crate::mutate::mutate;
use crate::targets::Target;
use fastrand::Rng;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Exit status of a process whose case panicked.
pub const EXIT_PANIC: i32 = 2;
/// Exit status of a process whose case ran past the time limit.
pub const EXIT_HANG: i32 = 3;
/// Exit status of a process whose case allocated past the memory limit.
pub const EXIT_MEMORY: i32 = 4;

/// What one case may take.
#[derive(Debug, Clone, Copy)]
pub struct CaseLimits {
    /// Most CPU time of one case under 1 MB; larger inputs get this per started megabyte.
    /// CPU time, not wall time, so a busy machine does not turn slow cases into hangs; a
    /// case that waits instead of computing counts as hung after ten times this.
    pub time: Duration,
    /// Most bytes one case may have live at once beyond what was live before it.
    pub memory: usize,
}

impl Default for CaseLimits {
    fn default() -> Self {
        Self {
            time: Duration::from_secs(2),
            memory: 1 << 30,
        }
    }
}

/// The input of case `case` of the campaign `seed` on `target`: a third of the cases
/// come from the target's generator where it has one, the rest mutate one of its seeds.
pub fn input_for(target: &Target, seeds: &[Vec<u8>], seed: u64, case: u64) -> Vec<u8> {
    let name_hash = target.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut rng = Rng::with_seed(seed ^ name_hash ^ case.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    if let Some(generate) = target.generate {
        if rng.u8(..3) == 0 {
            return generate(&mut rng);
        }
    }
    match rng.choice(seeds) {
        Some(base) => mutate(&mut rng, base, seeds, target.text),
        None => Vec::new(),
    }
}

/// How a case went wrong.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// It panicked (an assertion of the target is a panic too).
    Panic(String),
    /// It allocated this many bytes at once beyond what was live before it.
    Memory(usize),
}

impl Failure {
    /// The process exit status that reports it.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Panic(_) => EXIT_PANIC,
            Failure::Memory(_) => EXIT_MEMORY,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Panic(msg) => write!(f, "panic: {msg}"),
            Failure::Memory(bytes) => write!(f, "allocated {} MiB at once", bytes >> 20),
        }
    }
}

/// What one case cost.
#[derive(Debug, Clone, Copy)]
pub struct CaseCost {
    /// Wall time.
    pub time: Duration,
    /// Most bytes live at once beyond what was live before it.
    pub memory: usize,
    /// Whether the parser accepted the input (an error that explains itself is fine too).
    pub accepted: bool,
}

static LAST_PANIC: Mutex<String> = Mutex::new(String::new());
static WATCHDOG: OnceLock<()> = OnceLock::new();
/// When the running case started, in nanoseconds since [`epoch`]; 0 when none runs.
static CASE_STARTED: AtomicU64 = AtomicU64::new(0);
/// The CPU time the running case's thread had used when it started, in nanoseconds.
static CASE_STARTED_CPU: AtomicU64 = AtomicU64::new(0);
/// The CPU clock of the thread running cases.
static CASE_CLOCK: AtomicI32 = AtomicI32::new(0);
/// The time limit of the running case, in nanoseconds.
static CASE_LIMIT: AtomicU64 = AtomicU64::new(0);

/// The CPU-time clock of the calling thread.
fn this_thread_clock() -> libc::clockid_t {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: pthread_self is always valid for the calling thread; `clock` is a valid out
    // pointer.
    unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
    clock
}

/// Nanoseconds of CPU time on `clock` (0 if it cannot be read).
fn cpu_nanos(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out pointer; an invalid clock only makes the call fail.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Prepares the process for running cases: panics are recorded instead of printed (parsers
/// that catch their own panics, such as the PDF reader, would flood the output), and a
/// watchdog thread ends the process with [`EXIT_HANG`] when a case runs past its limit,
/// naming `what` is running.
pub fn install(describe: fn() -> String) {
    WATCHDOG.get_or_init(|| {
        epoch();
        std::panic::set_hook(Box::new(|info| {
            let msg = match info.payload().downcast_ref::<&str>() {
                Some(s) => (*s).to_string(),
                None => info
                    .payload()
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "a panic without a message".into()),
            };
            let at = info
                .location()
                .map(|l| format!(" at {l}"))
                .unwrap_or_default();
            if let Ok(mut last) = LAST_PANIC.lock() {
                *last = format!("{msg}{at}");
            }
        }));
        std::thread::Builder::new()
            .name("fuzz-watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(50));
                let started = CASE_STARTED.load(Ordering::Acquire);
                if started == 0 {
                    continue;
                }
                let limit = CASE_LIMIT.load(Ordering::Acquire);
                let wall = (epoch().elapsed().as_nanos() as u64).saturating_sub(started);
                let cpu = cpu_nanos(CASE_CLOCK.load(Ordering::Acquire))
                    .saturating_sub(CASE_STARTED_CPU.load(Ordering::Acquire));
                // A case that finished in between has reset CASE_STARTED: check again.
                if CASE_STARTED.load(Ordering::Acquire) != started {
                    continue;
                }
                let secs = limit as f64 / 1e9;
                if cpu > limit {
                    eprintln!("hang: {} used more than {secs:.1} s of CPU", describe());
                    std::process::exit(EXIT_HANG);
                }
                if wall > limit.saturating_mul(10) {
                    eprintln!(
                        "hang: {} was stuck for more than {:.1} s",
                        describe(),
                        secs * 10.0
                    );
                    std::process::exit(EXIT_HANG);
                }
            })
            .expect("the watchdog thread starts");
    });
}

/// Runs `data` through `target` once, under the watchdog installed by [`install`].
pub fn run_case(
    target: &Target,
    data: &[u8],
    scratch: &Path,
    limits: &CaseLimits,
) -> Result<CaseCost, Failure> {
    let megabytes = (data.len() >> 20) as u32 + 1;
    CASE_LIMIT.store(
        (limits.time * megabytes).as_nanos() as u64,
        Ordering::Release,
    );
    let before = alloc::reset_peak();
    let clock = this_thread_clock();
    CASE_CLOCK.store(clock, Ordering::Release);
    CASE_STARTED_CPU.store(cpu_nanos(clock), Ordering::Release);
    let start = Instant::now();
    CASE_STARTED.store(
        epoch().elapsed().as_nanos().max(1) as u64,
        Ordering::Release,
    );
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| (target.run)(data, scratch)));
    CASE_STARTED.store(0, Ordering::Release);
    let (time, memory) = (start.elapsed(), alloc::peak().saturating_sub(before));
    let Ok(accepted) = outcome else {
        let msg = LAST_PANIC.lock().map(|m| m.clone()).unwrap_or_default();
        return Err(Failure::Panic(msg));
    };
    let cost = CaseCost {
        time,
        memory,
        accepted,
    };
    if cost.memory > limits.memory {
        return Err(Failure::Memory(cost.memory));
    }
    Ok(cost)
}
