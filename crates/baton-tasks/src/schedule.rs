//! Cron schedules with a time zone (`croner` for the expressions, `chrono-tz` for the
//! zones), and what a schedule does with the times it missed while nothing ran.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::TaskError;

/// What a schedule does with times that passed while no worker ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissedRuns {
    /// Run once at start for all the missed times, then continue.
    RunOnce,
    /// Skip them; wait for the next time.
    Skip,
}

impl MissedRuns {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            MissedRuns::RunOnce => "run_once",
            MissedRuns::Skip => "skip",
        }
    }
}

impl FromStr for MissedRuns {
    type Err = TaskError;

    fn from_str(s: &str) -> Result<Self, TaskError> {
        match s.replace('-', "_").as_str() {
            "run_once" => Ok(MissedRuns::RunOnce),
            "skip" => Ok(MissedRuns::Skip),
            _ => Err(TaskError::Schedule(format!(
                "missed-run policy `{s}` is not run-once or skip"
            ))),
        }
    }
}

/// A parsed cron expression in a time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    tz: Tz,
}

impl CronSchedule {
    /// Parses a five-field cron expression (minute hour day-of-month month day-of-week;
    /// `@daily` and friends too) read in the IANA time zone `tz` (`Europe/Berlin`, `UTC`).
    /// Errors explain the expected form.
    pub fn parse(expr: &str, tz: &str) -> Result<CronSchedule, TaskError> {
        let tz: Tz = tz.parse().map_err(|_| {
            TaskError::Schedule(format!(
                "`{tz}` is not a time zone; use an IANA name such as UTC, Europe/Berlin or America/New_York"
            ))
        })?;
        let fields = expr.split_whitespace().count();
        if !expr.trim_start().starts_with('@') && fields != 5 {
            return Err(TaskError::Schedule(format!(
                "`{expr}` has {fields} field(s); a cron expression has 5: minute hour day-of-month month day-of-week (for example `0 8 * * 1-5` is 08:00 on weekdays)"
            )));
        }
        let cron = Cron::from_str(expr).map_err(|e| {
            TaskError::Schedule(format!(
                "`{expr}` is not a cron expression ({e}); the form is minute hour day-of-month month day-of-week, for example `0 8 * * 1-5` (08:00 on weekdays) or `*/15 * * * *` (every 15 minutes)"
            ))
        })?;
        Ok(CronSchedule { cron, tz })
    }

    /// The expression in words ("At 08:00 on Monday through Friday").
    pub fn describe(&self) -> String {
        self.cron.describe()
    }

    /// The first time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = self.tz.from_utc_datetime(&after.naive_utc());
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The next `count` times after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut times = Vec::with_capacity(count);
        let mut at = after;
        while times.len() < count {
            match self.next_after(at) {
                Some(next) => {
                    times.push(next);
                    at = next;
                }
                None => break,
            }
        }
        times
    }
}

/// What a worker does with a schedule whose time `due` has come at `now`: whether to make a
/// run, and the schedule's next time. A time missed by more than `grace_ms` follows the
/// missed-run policy.
pub fn fire(
    schedule: &CronSchedule,
    missed: MissedRuns,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
    grace_ms: i64,
) -> (bool, Option<DateTime<Utc>>) {
    let next = schedule.next_after(now);
    let late = (now - due).num_milliseconds() > grace_ms;
    let run = !late || missed == MissedRuns::RunOnce;
    (run, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn next_times_respect_the_zone() {
        let s = CronSchedule::parse("0 8 * * 1-5", "Europe/Berlin").unwrap();
        // Friday 2026-12-04 08:00 in Berlin is 07:00 UTC.
        let next = s.next_after(utc("2026-12-04T06:00:00Z")).unwrap();
        assert_eq!(next, utc("2026-12-04T07:00:00Z"));
        // After it, the weekend is skipped.
        let after = s.next_after(next).unwrap();
        assert_eq!(after, utc("2026-12-07T07:00:00Z"));
        assert_eq!(s.upcoming(utc("2026-12-04T06:00:00Z"), 3).len(), 3);
        assert!(
            s.describe().to_lowercase().contains("08:00"),
            "{}",
            s.describe()
        );
    }

    #[test]
    fn bad_expressions_are_explained() {
        let err = CronSchedule::parse("0 8 * *", "UTC")
            .unwrap_err()
            .to_string();
        assert!(err.contains("has 4 field(s)"), "{err}");
        let err = CronSchedule::parse("0 25 * * *", "UTC")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a cron expression"), "{err}");
        let err = CronSchedule::parse("0 8 * * *", "Mars/Olympus")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a time zone"), "{err}");
        assert!(CronSchedule::parse("@daily", "UTC").is_ok());
    }

    #[test]
    fn missed_times_follow_the_policy() {
        let s = CronSchedule::parse("0 8 * * *", "UTC").unwrap();
        let due = utc("2026-12-01T08:00:00Z");
        let on_time = utc("2026-12-01T08:00:01Z");
        let days_late = utc("2026-12-03T12:00:00Z");
        assert!(fire(&s, MissedRuns::Skip, due, on_time, 60_000).0);
        let (run, next) = fire(&s, MissedRuns::Skip, due, days_late, 60_000);
        assert!(!run);
        assert_eq!(next, Some(utc("2026-12-04T08:00:00Z")));
        assert!(fire(&s, MissedRuns::RunOnce, due, days_late, 60_000).0);
    }
}
