//! Evaluation of models and modes: question sets (JSON Lines, built-in or from a file),
//! answer checkers (text, regex, number, constraints, Python code that is executed), and
//! the statistics that compare scores (Wilson intervals, paired differences).
//!
//! Running a set against engines is the runtime's job (`baton_runtime::eval`); this crate
//! holds what can be tested without a model: what a question is, whether an answer passes,
//! and what the scores mean.
#![warn(missing_docs)]

mod check;
mod python;
mod set;
mod stats;

pub use check::{check, normalize, CheckOutcome};
pub use python::{python_available, run_python_check, PYTHON_TIMEOUT};
pub use set::{
    builtin_set, builtin_sets, load_set, parse_set, Check, EvalItem, EvalSet, SetError,
    BUILTIN_SETS,
};
pub use stats::{paired_difference, wilson_interval, Interval, PairedDifference};
