//! The short form of the fuzz campaigns that `make test` runs: every target gets a few
//! hundred mutated inputs in a child process, and every checked-in input that once broke
//! a parser is replayed. The long campaigns (10,000 cases a target) run in `make fuzz`.

use std::process::Command;

fn fuzz() -> Command {
    Command::new(env!("CARGO_BIN_EXE_baton-fuzz"))
}

#[test]
fn every_target_survives_a_short_campaign() {
    let out = tempfile::tempdir().unwrap();
    // A debug build on a busy machine is slow: the time limit here only catches real hangs.
    let result = fuzz()
        .args([
            "run",
            "--cases",
            "250",
            "--seed",
            "7",
            "--time-limit",
            "20",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    println!("{stdout}");
    assert!(
        result.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    for target in baton_fuzz::TARGETS {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(target.name) && l.contains(" 250 ")),
            "{} did not run 250 cases:\n{stdout}",
            target.name
        );
    }
}

#[test]
fn inputs_that_once_broke_a_parser_pass() {
    let result = fuzz()
        .args(["replay", "--time-limit", "20"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    println!("{stdout}");
    assert!(
        result.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(stdout.contains("input(s) replayed"), "{stdout}");
}

#[test]
fn a_hang_ends_the_replay_and_names_the_input() {
    // The watchdog's own check: an input that takes longer than the limit must end the
    // replay with the hang status, naming the input. A 1 ms limit makes this one hang.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("document")).unwrap();
    let big = "word ".repeat(200_000);
    std::fs::write(
        dir.path().join("document").join("slow.bin"),
        format!("t{big}"),
    )
    .unwrap();
    let result = fuzz()
        .args(["replay", "--time-limit", "0.001"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(
        result.status.code(),
        Some(baton_fuzz::campaign::EXIT_HANG),
        "{stderr}"
    );
    assert!(stderr.contains("slow.bin"), "{stderr}");
}

#[test]
fn a_finding_is_written_out_and_can_be_made_again() {
    // With a limit of a tenth of a millisecond some document cases count as hangs: the
    // campaign must go on past each, write its input and fail at the end.
    let out = tempfile::tempdir().unwrap();
    let result = fuzz()
        .args([
            "run",
            "document",
            "--cases",
            "40",
            "--seed",
            "3",
            "--time-limit",
            "0.0001",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(!result.status.success(), "{stdout}");
    let found: Vec<_> = std::fs::read_dir(out.path().join("document"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!found.is_empty() && found.len() <= 10, "{stdout}");
    assert_eq!(
        stdout.matches("finding: document case").count(),
        found.len(),
        "{stdout}"
    );
    // The file name holds the seed and case; `input` makes the same bytes again.
    let file = &found[0];
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let case = name.split("-case").nth(1).unwrap().trim_end_matches(".bin");
    let again = out.path().join("again");
    let made = fuzz()
        .args(["input", "document", "--seed", "3", "--case", case, "-o"])
        .arg(&again)
        .status()
        .unwrap();
    assert!(made.success());
    assert_eq!(std::fs::read(file).unwrap(), std::fs::read(&again).unwrap());
}
