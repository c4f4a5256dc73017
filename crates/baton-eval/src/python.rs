//! Runs a code answer with its tests in a separate Python process.

use crate::check::CheckOutcome;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a code answer and its tests may run.
pub const PYTHON_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `python3` can be started.
pub fn python_available() -> bool {
    Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `code` followed by `tests` with `python3 -I` (isolated: no user site, no
/// environment variables) in a fresh temporary directory, with [`PYTHON_TIMEOUT`]. Passes
/// when the process exits with 0.
pub fn run_python_check(code: &str, tests: &str) -> CheckOutcome {
    let fail = |detail: String| CheckOutcome {
        passed: false,
        detail,
    };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return fail(format!("cannot make a directory to run the code: {e}")),
    };
    let file = dir.path().join("answer.py");
    if let Err(e) = std::fs::write(&file, format!("{code}\n\n{tests}\n")) {
        return fail(format!("cannot write the code: {e}"));
    }
    let child = Command::new("python3")
        .arg("-I")
        .arg(&file)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return fail(format!(
                "cannot run python3 ({e}); install python3 to check code answers"
            ))
        }
    };
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= PYTHON_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return fail(format!(
                    "did not finish within {} s",
                    PYTHON_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return fail(format!("cannot wait for python3: {e}")),
        }
    };
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    if status.success() {
        CheckOutcome {
            passed: true,
            detail: "the tests pass".into(),
        }
    } else {
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no error output")
            .trim();
        fail(format!("the tests fail: {last}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_failing_and_endless_code() {
        if !python_available() {
            eprintln!("skipped: no python3");
            return;
        }
        assert!(run_python_check("def f(x):\n    return x * 2", "assert f(2) == 4").passed);
        let out = run_python_check("def f(x):\n    return x", "assert f(2) == 4");
        assert!(
            !out.passed && out.detail.contains("AssertionError"),
            "{out:?}"
        );
        let out = run_python_check("def f(:", "pass");
        assert!(!out.passed && out.detail.contains("SyntaxError"), "{out:?}");
    }
}
