//! Per-engine circuit breakers: closed, open, half-open, driven by measured failure rates.
//!
//! The breaker is pure: callers pass the current time as milliseconds on a monotonic clock,
//! so every transition is unit-testable without sleeping.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// When a breaker opens and how it recovers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerPolicy {
    /// How many recent outcomes the failure rate is measured over.
    pub window: usize,
    /// At least this many outcomes must be in the window before the breaker may open.
    pub min_requests: usize,
    /// The breaker opens when the failure rate in the window reaches this fraction.
    pub failure_rate: f64,
    /// How long an open breaker refuses requests before letting a probe through.
    pub open_ms: u64,
    /// Consecutive successful probes that close a half-open breaker.
    pub probes_to_close: u32,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            window: 20,
            min_requests: 4,
            failure_rate: 0.5,
            open_ms: 30_000,
            probes_to_close: 1,
        }
    }
}

/// The state a breaker is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests flow; outcomes are measured.
    Closed,
    /// Requests are refused until `until_ms`.
    Open {
        /// When a probe may go through.
        until_ms: u64,
    },
    /// One probe at a time tests whether the engine recovered.
    HalfOpen {
        /// Whether a probe is in flight now.
        probing: bool,
        /// Successful probes so far.
        successes: u32,
    },
}

impl BreakerState {
    /// A short lowercase name for the UI and logs.
    pub fn name(&self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen { .. } => "half-open",
        }
    }
}

/// A circuit breaker for one engine.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    policy: BreakerPolicy,
    state: BreakerState,
    outcomes: VecDeque<bool>,
}

/// Why a request was refused by an open breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Milliseconds until a probe will be allowed.
    pub retry_in_ms: u64,
}

impl CircuitBreaker {
    /// A closed breaker with the given policy.
    pub fn new(policy: BreakerPolicy) -> Self {
        Self {
            policy,
            state: BreakerState::Closed,
            outcomes: VecDeque::with_capacity(policy.window.max(1)),
        }
    }

    /// The current state (an open breaker whose time is up reads as half-open).
    pub fn state(&self, now_ms: u64) -> BreakerState {
        match self.state {
            BreakerState::Open { until_ms } if now_ms >= until_ms => BreakerState::HalfOpen {
                probing: false,
                successes: 0,
            },
            state => state,
        }
    }

    /// The failure rate over the measured window (0 when nothing was measured).
    pub fn failure_rate(&self) -> f64 {
        if self.outcomes.is_empty() {
            return 0.0;
        }
        let failures = self.outcomes.iter().filter(|ok| !**ok).count();
        failures as f64 / self.outcomes.len() as f64
    }

    /// Asks to send a request now. A closed breaker always allows; an open one refuses until
    /// its time is up; a half-open one lets exactly one probe through at a time.
    pub fn try_acquire(&mut self, now_ms: u64) -> Result<(), Refused> {
        self.state = self.state(now_ms);
        match &mut self.state {
            BreakerState::Closed => Ok(()),
            BreakerState::Open { until_ms } => Err(Refused {
                retry_in_ms: until_ms.saturating_sub(now_ms),
            }),
            BreakerState::HalfOpen { probing, .. } => {
                if *probing {
                    Err(Refused { retry_in_ms: 0 })
                } else {
                    *probing = true;
                    Ok(())
                }
            }
        }
    }

    /// Records that an allowed request succeeded.
    pub fn record_success(&mut self, now_ms: u64) {
        self.push(true);
        self.state = match self.state(now_ms) {
            BreakerState::HalfOpen { successes, .. } => {
                if successes + 1 >= self.policy.probes_to_close {
                    self.outcomes.clear();
                    BreakerState::Closed
                } else {
                    BreakerState::HalfOpen {
                        probing: false,
                        successes: successes + 1,
                    }
                }
            }
            other => other,
        };
    }

    /// Records that an allowed request failed (an error worth counting against the engine:
    /// not a cancellation or the user's own bad input).
    pub fn record_failure(&mut self, now_ms: u64) {
        self.push(false);
        let reopen = BreakerState::Open {
            until_ms: now_ms + self.policy.open_ms,
        };
        self.state = match self.state(now_ms) {
            BreakerState::HalfOpen { .. } => reopen,
            BreakerState::Closed
                if self.outcomes.len() >= self.policy.min_requests
                    && self.failure_rate() >= self.policy.failure_rate =>
            {
                reopen
            }
            other => other,
        };
    }

    fn push(&mut self, ok: bool) {
        if self.outcomes.len() == self.policy.window.max(1) {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back(ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(BreakerPolicy {
            window: 10,
            min_requests: 4,
            failure_rate: 0.5,
            open_ms: 1000,
            probes_to_close: 2,
        })
    }

    #[test]
    fn stays_closed_below_the_minimum_number_of_requests() {
        let mut b = breaker();
        for t in 0..3 {
            assert!(b.try_acquire(t).is_ok());
            b.record_failure(t);
        }
        assert_eq!(b.state(3), BreakerState::Closed);
    }

    #[test]
    fn opens_at_the_failure_rate_then_half_opens_and_closes_after_probes() {
        let mut b = breaker();
        b.record_success(0);
        b.record_success(1);
        b.record_failure(2);
        assert_eq!(b.state(2), BreakerState::Closed);
        b.record_failure(3);
        assert_eq!(b.state(3), BreakerState::Open { until_ms: 1003 });
        assert_eq!(b.try_acquire(500), Err(Refused { retry_in_ms: 503 }));
        // Time is up: one probe at a time.
        assert!(b.try_acquire(1003).is_ok());
        assert_eq!(b.try_acquire(1004), Err(Refused { retry_in_ms: 0 }));
        b.record_success(1010);
        assert_eq!(b.state(1010).name(), "half-open");
        assert!(b.try_acquire(1011).is_ok());
        b.record_success(1012);
        assert_eq!(b.state(1012), BreakerState::Closed);
        assert_eq!(b.failure_rate(), 0.0);
    }

    #[test]
    fn a_failed_probe_reopens() {
        let mut b = breaker();
        for t in 0..4 {
            b.record_failure(t);
        }
        assert!(b.try_acquire(2000).is_ok());
        b.record_failure(2001);
        assert_eq!(b.state(2001), BreakerState::Open { until_ms: 3001 });
    }

    #[test]
    fn the_window_forgets_old_failures() {
        let mut b = breaker();
        for t in 0..3 {
            b.record_failure(t);
        }
        for t in 3..13 {
            b.record_success(t);
        }
        assert_eq!(b.failure_rate(), 0.0);
        b.record_failure(14);
        assert_eq!(b.state(14), BreakerState::Closed);
    }
}
