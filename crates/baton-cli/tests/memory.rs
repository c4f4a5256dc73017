//! Memory end to end through the real `baton` binary with the real embedding model
//! (all-MiniLM-L6-v2) and, for answers, the real default chat model: documents added from
//! a folder with good and bad files, found by meaning and by words, re-read when they
//! change; `kill -9` while documents are read and while they are embedded; a fact from one
//! session answered in another with its source shown, and not with memory off; older turns
//! summarised when a conversation outgrows the context window.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{one_at_a_time, Env, CHAT};

const EMBEDDING: &str = "all-minilm-l6-v2";

impl Env {
    /// Runs SQL on the database with Python's sqlite3 (a second, independent reader) and
    /// returns the first column of each row.
    fn sql(&self, query: &str) -> Vec<String> {
        let out = Command::new("python3")
            .args([
                "-c",
                "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nfor r in c.execute(sys.argv[2]): print(r[0])",
            ])
            .arg(self.path("data").join("baton.sqlite3"))
            .arg(query)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn count(&self, query: &str) -> i64 {
        self.sql(query)[0].parse().unwrap()
    }
}

/// Waits until `done` holds (checked as often as it takes), or fails after `limit`.
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

/// A one-page PDF whose text layer holds `lines` (Helvetica, WinAnsi), with a correct
/// cross-reference table.
fn pdf(lines: &[&str]) -> Vec<u8> {
    baton_memory::docs::text_pdf(lines)
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn skipped_reason(report: &Value, name: &str) -> Option<String> {
    report["skipped"].as_array().unwrap().iter().find_map(|s| {
        let path = s[0].as_str().unwrap();
        path.ends_with(name)
            .then(|| s[1].as_str().unwrap().to_owned())
    })
}

fn hits(env: &Env, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["search"];
    all.extend_from_slice(args);
    env.json(&all).as_array().unwrap().clone()
}

#[test]
fn documents_are_read_found_by_meaning_and_words_and_bad_files_are_skipped_with_reasons() {
    let env = Env::new(&[EMBEDDING]);
    let docs = env.path("docs");
    write(
        &docs.join("home/boiler.md"),
        "# Boiler\n\nThe boiler service is booked with Hansen Heating for 14 March. \
         The engineer asked us to clear the cupboard under the stairs first.\n",
    );
    write(
        &docs.join("travel.txt"),
        "Passport renewal: the appointment at the consulate is on 2 April at 09:30.",
    );
    write(
        &docs.join("src/retry.rs"),
        "/// Waits twice as long after each failure, up to a minute.\nfn backoff(attempt: u32) -> u64 { (1u64 << attempt).min(60) }\n",
    );
    write(
        &docs.join("reports/rain.pdf"),
        pdf(&[
            "Annual weather report",
            "Lisbon recorded 774 millimetres of rainfall this year,",
            "most of it between November and February.",
        ]),
    );
    // What cannot be used, each for its own reason.
    write(&docs.join("empty.txt"), "");
    write(&docs.join("blob.dat"), [0u8, 159, 146, 150, 0, 1, 2, 3]);
    write(&docs.join("latin1.txt"), b"caf\xe9 cr\xe8me");
    write(
        &docs.join("broken.pdf"),
        b"%PDF-1.7\nthis is not really a PDF\n",
    );
    std::fs::File::create(docs.join("huge.log"))
        .unwrap()
        .set_len(200 * 1024 * 1024)
        .unwrap();
    // Hidden files and dependency folders are not memory.
    write(
        &docs.join(".git/config"),
        "[core]\nsecret = hidden-token-123",
    );
    write(
        &docs.join("node_modules/x/index.js"),
        "module.exports = 'dependency';",
    );

    let added = env.json(&["docs", "add", docs.to_str().unwrap()]);
    let report = &added[0]["report"];
    assert_eq!(report["added"], 4, "{added:#}");
    let reasons = [
        ("empty.txt", "empty"),
        ("blob.dat", "binary"),
        ("latin1.txt", "UTF-8"),
        ("broken.pdf", "unreadable PDF"),
        ("huge.log", "over 50 MB"),
    ];
    for (name, why) in reasons {
        let reason =
            skipped_reason(report, name).unwrap_or_else(|| panic!("{name} not skipped: {added:#}"));
        assert!(reason.contains(why), "{name}: {reason}");
    }
    assert_eq!(
        report["skipped"].as_array().unwrap().len(),
        reasons.len(),
        "{added:#}"
    );
    let root = &added[0]["root"];
    assert_eq!(
        (root["indexed"].as_i64(), root["skipped"].as_i64()),
        (Some(4), Some(5))
    );

    // By meaning: the question shares no word with the PDF's text.
    let found = hits(&env, &["--semantic", "how wet was Portugal's capital"]);
    assert!(
        found[0]["location"].as_str().unwrap().ends_with("rain.pdf"),
        "{found:#?}"
    );
    assert!(found[0]["why"][0].as_str().unwrap().starts_with("meaning"));
    // Hybrid, with the reason it matched.
    let found = hits(&env, &["when is someone coming to fix the heating"]);
    assert!(
        found[0]["location"]
            .as_str()
            .unwrap()
            .ends_with("boiler.md"),
        "{found:#?}"
    );
    let found = hits(&env, &["--words", "--kind", "chunk", "consulate"]);
    assert_eq!(found.len(), 1);
    assert!(found[0]["text"].as_str().unwrap().contains("[consulate]"));
    assert!(hits(&env, &["--words", "hidden-token-123"]).is_empty());
    assert!(hits(&env, &["--words", "dependency"]).is_empty());

    // Changes: one file rewritten, one deleted, one added; the rest is not read again.
    write(
        &docs.join("travel.txt"),
        "The consulate moved the passport appointment to 9 April.",
    );
    std::fs::remove_file(docs.join("home/boiler.md")).unwrap();
    write(
        &docs.join("new.md"),
        "Dentist: Dr Okafor, check-up every six months.",
    );
    let again = env.json(&["docs", "reindex"]);
    let report = &again[0]["report"];
    assert_eq!(
        (
            report["added"].as_i64(),
            report["updated"].as_i64(),
            report["removed"].as_i64(),
            report["unchanged"].as_i64()
        ),
        (Some(1), Some(1), Some(1), Some(7)),
        "{again:#}"
    );
    assert!(
        hits(&env, &["--words", "Hansen"]).is_empty(),
        "the deleted file is forgotten"
    );
    let found = hits(&env, &["--words", "consulate"]);
    assert!(found[0]["text"].as_str().unwrap().contains("9 April"));
    let status = env.json(&["memory", "status"]);
    assert_eq!(
        status["vectors"]["embedded"], status["vectors"]["total"],
        "{status:#}"
    );

    // A path that does not exist is refused with a reason; the others are still added.
    let other = env.path("more");
    write(
        &other.join("note.txt"),
        "The bike lock code is written on the shed door.",
    );
    let out = env.run(&["docs", "add", "/no/such/folder", other.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/no/such/folder") && err.contains("exists"),
        "{err}"
    );
    assert_eq!(hits(&env, &["--words", "shed"]).len(), 1);

    // Removing a root takes its chunks and vectors with it.
    env.ok(&["docs", "remove", other.to_str().unwrap()]);
    assert!(hits(&env, &["--words", "shed"]).is_empty());
    assert_eq!(env.count("SELECT COUNT(*) FROM embeddings e WHERE e.kind = 'chunk' AND NOT EXISTS (SELECT 1 FROM doc_chunks c WHERE c.id = e.ref_id)"), 0);
}

#[test]
fn the_watcher_reads_files_as_they_change() {
    let env = Env::new(&[EMBEDDING]);
    let docs = env.path("watched");
    write(
        &docs.join("a.txt"),
        "The spare key is under the blue flower pot.",
    );
    env.ok(&["docs", "add", docs.to_str().unwrap()]);
    let mut watcher: Child = env
        .command(&["docs", "watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // It says it watches once its watches are set.
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(watcher.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.contains("watching 1 roots"), "{line}");
    write(
        &docs.join("sub/b.md"),
        "Wifi password for the holiday house: lemon-tree-42.",
    );
    wait_for(Duration::from_secs(180), "the new file to be read", || {
        hits(&env, &["--words", "holiday"]).len() == 1
    });
    std::fs::remove_file(docs.join("a.txt")).unwrap();
    wait_for(
        Duration::from_secs(180),
        "the deleted file to be forgotten",
        || hits(&env, &["--words", "flower"]).is_empty(),
    );
    // New text is embedded in the background as well.
    wait_for(Duration::from_secs(180), "the new chunk's vector", || {
        let s = env.json(&["memory", "status"]);
        s["vectors"]["embedded"] == s["vectors"]["total"]
    });
    watcher.kill().unwrap();
    watcher.wait().unwrap();
}

/// Every text has exactly one vector of the model, and every vector describes a row that
/// exists with the text it was made from (checked by a second reader, Python's sqlite3).
fn assert_one_current_vector_per_row(env: &Env) {
    let texts = env.count(
        "SELECT (SELECT COUNT(*) FROM messages WHERE role != 'system' AND content != '')
              + (SELECT COUNT(*) FROM doc_chunks)",
    );
    let vectors = env.count("SELECT COUNT(*) FROM embeddings");
    assert_eq!(vectors, texts, "one vector per text");
    let orphans = env.count(
        "SELECT COUNT(*) FROM embeddings e WHERE
           (e.kind = 'chunk' AND NOT EXISTS (SELECT 1 FROM doc_chunks c WHERE c.id = e.ref_id))
        OR (e.kind = 'message' AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = e.ref_id))",
    );
    assert_eq!(orphans, 0);
    assert_eq!(env.count("SELECT COUNT(*) FROM (SELECT kind, ref_id FROM embeddings GROUP BY kind, ref_id HAVING COUNT(*) > 1)"), 0);
    assert_eq!(env.sql("PRAGMA integrity_check"), ["ok"]);
}

#[test]
fn kill_9_while_reading_documents_and_while_embedding_loses_nothing() {
    let env = Env::new(&[EMBEDDING]);
    let docs = env.path("many");
    let topics = [
        "rainfall",
        "invoices",
        "pottery",
        "train times",
        "recipes",
        "bicycles",
    ];
    for i in 0..600 {
        let topic = topics[i % topics.len()];
        write(
            &docs.join(format!("d{:02}/note-{i}.txt", i % 20)),
            format!(
                "Note {i} about {topic}: entry {i} records a detail about {topic} worth keeping."
            ),
        );
    }
    write(
        &docs.join("zz/target.txt"),
        "The allotment plot number is 37 and the gate code is 2580.",
    );

    // Killed while reading: some files are in, none half-way.
    let mut child = env
        .command(&["docs", "add", docs.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        Duration::from_secs(300),
        "some documents to be stored",
        || {
            Path::new(&env.path("data").join("baton.sqlite3")).exists()
                && env.count("SELECT COUNT(*) FROM sqlite_master WHERE name = 'documents'") == 1
                && env.count("SELECT COUNT(*) FROM documents") >= 20
        },
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let stored = env.count("SELECT COUNT(*) FROM documents");
    assert!(
        stored < 601,
        "the kill landed before the end ({stored} files)"
    );
    // Every stored file has all its chunks (its transaction was whole).
    assert_eq!(
        env.count("SELECT COUNT(*) FROM documents d WHERE d.chunks != (SELECT COUNT(*) FROM doc_chunks c WHERE c.document_id = d.id)"),
        0
    );

    // Again: the rest is read, then embedding starts; killed while embedding.
    let mut child = env
        .command(&["docs", "add", docs.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(600), "some vectors", || {
        env.count("SELECT COUNT(*) FROM embeddings") >= 32
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let chunks = env.count("SELECT COUNT(*) FROM doc_chunks");
    let vectors = env.count("SELECT COUNT(*) FROM embeddings");
    assert_eq!(env.count("SELECT COUNT(*) FROM documents"), 601);
    assert!(
        vectors < chunks,
        "the kill landed before the end ({vectors} of {chunks})"
    );

    // Restarted: the back-fill finishes; every row has exactly one current vector.
    env.ok(&["memory", "backfill"]);
    assert_one_current_vector_per_row(&env);
    let found = hits(
        &env,
        &["--semantic", "what is the gate code of my allotment"],
    );
    assert!(
        found[0]["location"]
            .as_str()
            .unwrap()
            .ends_with("target.txt"),
        "{found:#?}"
    );
}

fn chat(env: &Env, args: &[&str]) -> Value {
    let mut all = vec!["chat", "--model", CHAT];
    all.extend_from_slice(args);
    env.json(&all)
}

#[test]
fn a_fact_from_one_session_answers_another_with_its_source_and_not_with_memory_off() {
    let _turn = one_at_a_time();
    // Greedy sampling: what is checked is what memory gives the model, not the luck of a
    // draw (at 0.3 the 1.5B model once answered a made-up code beside the right one).
    let env = Env::with_config(&[EMBEDDING, CHAT], "[chat]\ntemperature = 0\n");
    let first = chat(
        &env,
        &["Please note for later: the code of my locker at the swimming pool is 4719."],
    );
    let asked = "What is the code of my locker at the swimming pool?";
    let second = chat(&env, &[asked]);
    assert_ne!(second["session"], first["session"]);
    let answer = second["answer"].as_str().unwrap();
    assert!(answer.contains("4719"), "{answer}");
    let sources = second["sources"].as_array().unwrap();
    assert!(
        sources
            .iter()
            .any(|s| s["session_id"] == first["session"]
                && s["text"].as_str().unwrap().contains("4719")),
        "{sources:#?}"
    );
    // The sources are stored with the answer and shown with the session.
    let shown = env.ok(&["sessions", "show", second["session"].as_str().unwrap()]);
    assert!(
        shown.contains("Sources from memory:") && shown.contains("[1]"),
        "{shown}"
    );

    env.ok(&["memory", "off"]);
    let third = chat(&env, &[asked]);
    let answer = third["answer"].as_str().unwrap();
    assert!(!answer.contains("4719"), "{answer}");
    assert!(third["sources"].as_array().unwrap().is_empty());
    // On again for one session only.
    let session = third["session"].as_str().unwrap();
    env.ok(&["memory", "session", session, "on"]);
    let fourth = chat(&env, &["--session", session, asked]);
    assert!(
        fourth["answer"].as_str().unwrap().contains("4719"),
        "{fourth:#}"
    );
}

#[test]
fn a_conversation_that_outgrows_the_window_is_summarised_not_cut() {
    let _turn = one_at_a_time();
    let config = "[chat]\nmax_tokens = 48\n[llm]\ncontext_length = 1024\n[memory]\nenabled = false\nsummary_tokens = 300\nmemory_tokens = 100\n";
    let env = Env::with_config(&[CHAT], config);
    let first = env.json(&[
        "chat",
        "--model",
        CHAT,
        "My sister is called Ingrid and she lives in Bergen. Reply with OK.",
    ]);
    let session = first["session"].as_str().unwrap().to_owned();
    let filler = "The committee reviewed the budget line by line, discussing maintenance of the \
                  community hall, the cost of new chairs, heating bills over the winter months, \
                  insurance renewals and the schedule of volunteer cleaning shifts. ";
    for i in 0..3 {
        let text = format!("Paragraph {i}: {} Reply with one word.", filler.repeat(4));
        env.json(&["chat", "--model", CHAT, "--session", &session, &text]);
    }
    let last = env.json(&[
        "chat",
        "--model",
        CHAT,
        "--session",
        &session,
        "What is my sister's name?",
    ]);
    let shown = env.json(&["sessions", "show", &session]);
    let summary = &shown["summary"];
    assert!(summary.is_object(), "no summary: {shown:#}");
    assert!(
        summary["content"].as_str().unwrap().contains("Ingrid"),
        "{summary:#}"
    );
    assert!(
        last["answer"].as_str().unwrap().contains("Ingrid"),
        "{last:#}"
    );
    let human = env.ok(&["sessions", "show", &session]);
    assert!(human.contains("were summarised by"), "{human}");
    // Every turn is still stored: the summary stands in for them only in the model's context.
    assert_eq!(shown["messages"].as_array().unwrap().len(), 10);
}
