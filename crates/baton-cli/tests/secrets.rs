//! A remote engine's API key lives only in the key store: after adding an engine with a key,
//! chatting through it, and making it fail, the key appears nowhere in the data directory
//! (the SQLite file and its WAL included), the logs, the config, any process's arguments
//! (`/proc/*/cmdline`) or any output, error output included. The engine is a small
//! OpenAI-compatible server in Python that records the `Authorization` header it gets, so
//! the test also shows that the key really was used.

mod common;

use common::{files_containing, Env};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Answers `GET /v1/models` with one model and `POST /v1/chat/completions` with a short
/// streamed answer, two seconds after the request arrives (long enough to look at the
/// processes while a chat waits). Every request's `Authorization` header is appended to
/// the file given as the second argument; the port it listens on goes to the first.
const SERVER: &str = r#"
import http.server, json, sys, time
port_file, auth_file = sys.argv[1], sys.argv[2]

class Handler(http.server.BaseHTTPRequestHandler):
    def record(self):
        with open(auth_file, "a") as f:
            f.write((self.headers.get("Authorization") or "-") + "\n")

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.record()
        body = json.dumps({"object": "list", "data": [{"id": "fake-model", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        self.record()
        time.sleep(2)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for piece in ["Hello", " from", " the fake engine."]:
            chunk = {"id": "c1", "object": "chat.completion.chunk", "model": "fake-model",
                     "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        done = {"id": "c1", "object": "chat.completion.chunk", "model": "fake-model",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}}
        self.wfile.write(b"data: " + json.dumps(done).encode() + b"\n\ndata: [DONE]\n\n")

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
"#;

struct FakeEngine {
    child: Child,
    url: String,
    auth_log: PathBuf,
}

impl FakeEngine {
    fn start(dir: &Path) -> Self {
        let port_file = dir.join("port");
        let auth_log = dir.join("auth.log");
        let child = Command::new("python3")
            .args(["-c", SERVER])
            .arg(&port_file)
            .arg(&auth_log)
            .spawn()
            .expect("python3 runs");
        let port = wait_for(
            || std::fs::read_to_string(&port_file).ok(),
            "the fake engine",
        );
        Self {
            child,
            url: format!("http://127.0.0.1:{port}/v1"),
            auth_log,
        }
    }

    fn authorizations(&self) -> Vec<String> {
        std::fs::read_to_string(&self.auth_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for FakeEngine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `probe` until it gives a value (every 20 ms, at most a minute).
fn wait_for<T>(mut probe: impl FnMut() -> Option<T>, what: &str) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The command lines of every process holding `needle`.
fn processes_showing(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) {
                found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}

fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn an_engine_key_appears_nowhere_but_the_key_store() {
    let env = Env::with_key_file();
    let key = format!(
        "sk-baton-test-{:x}",
        std::process::id() as u64 * 0x9E37_79B9
    );
    // The engine's own record of the headers it got lives outside the searched folder.
    let server_dir = tempfile::tempdir().unwrap();
    let engine = FakeEngine::start(server_dir.path());
    let baton = |args: &[&str]| {
        let mut cmd = env.command(args);
        cmd.env("BATON_LOG", "trace");
        cmd
    };
    let mut outputs = Vec::new();

    // Added with the key on standard input, the only way the CLI takes one.
    let mut add = baton(&[
        "-v",
        "engines",
        "add",
        "fake",
        "--url",
        &engine.url,
        "--key-stdin",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    add.stdin.take().unwrap().write_all(key.as_bytes()).unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    outputs.push(output_text(&out));

    // A chat through it: while it waits for the answer, no process shows the key.
    let chat = baton(&["-v", "chat", "--model", "fake/fake-model", "Say hello"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let posts = |e: &FakeEngine| e.authorizations().len();
    let before = posts(&engine);
    wait_for(
        || (posts(&engine) > before).then_some(()),
        "the chat request",
    );
    let shown = processes_showing(&key);
    let out = chat.wait_with_output().unwrap();
    assert!(
        shown.is_empty(),
        "the key is in process arguments: {shown:?}"
    );
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("fake engine"));
    outputs.push(output_text(&out));
    outputs.push(output_text(
        &baton(&["-v", "engines", "list"]).output().unwrap(),
    ));
    outputs.push(output_text(
        &baton(&["--json", "engines", "list"]).output().unwrap(),
    ));

    // The key was sent, as a bearer token, to the engine and nowhere else.
    let sent = engine.authorizations();
    assert!(
        !sent.is_empty() && sent.iter().all(|a| a == &format!("Bearer {key}")),
        "{sent:?}"
    );

    // Failures: the engine gone, then a wrong passphrase. Their messages hold no key.
    drop(engine);
    let out = baton(&["-v", "engines", "test", "fake"]).output().unwrap();
    assert!(!out.status.success());
    outputs.push(output_text(&out));
    let out = baton(&["-v", "chat", "--model", "fake/fake-model", "Again"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    outputs.push(output_text(&out));
    let out = env
        .command(&["-v", "chat", "--model", "fake/fake-model", "Again"])
        .env("BATON_SECRETS_PASSPHRASE", "the wrong one")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let wrong = output_text(&out);
    assert!(wrong.contains("passphrase"), "{wrong}");
    outputs.push(wrong);

    for text in &outputs {
        assert!(!text.contains(&key), "the key is in output: {text}");
    }
    // Logs, config, the database (and its WAL) and everything else under the test's
    // directories; the encrypted key file holds it only encrypted.
    let leaked = files_containing(env.dir.path(), key.as_bytes());
    assert!(leaked.is_empty(), "the key is in {leaked:?}");
    let logs = files_containing(&env.path("state"), b"fake");
    assert!(
        !logs.is_empty(),
        "no log mentions the engine: logging was not on"
    );
}
