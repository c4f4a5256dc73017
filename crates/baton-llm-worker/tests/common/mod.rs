//! Test helpers: tiny GGUF models generated at test time, and a raw protocol driver.
#![allow(dead_code)]

use baton_llm::protocol::{to_line, WorkerEvent, WorkerRequest, PROTOCOL_VERSION};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

/// The worker binary cargo built for these tests.
pub const WORKER: &str = env!("CARGO_BIN_EXE_baton-llm-worker");

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("repo root")
        .to_path_buf()
}

/// Paths of the generated test models.
pub struct Models {
    _dir: tempfile::TempDir,
    /// Tiny llama with a ChatML template, 2048-token training context.
    pub chat: PathBuf,
    /// The same without a chat template.
    pub no_template: PathBuf,
    /// Directory to put broken files in.
    pub dir: PathBuf,
}

/// Generate the tiny models once per test binary (python3 + the `gguf` package).
pub fn models() -> &'static Models {
    static MODELS: OnceLock<Models> = OnceLock::new();
    MODELS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let chat = dir.path().join("tiny-chat.gguf");
        let no_template = dir.path().join("tiny-base.gguf");
        let script = repo_root().join("models/gen_tiny_gguf.py");
        for (path, extra) in [(&chat, None), (&no_template, Some("--no-chat-template"))] {
            let mut cmd = Command::new("python3");
            cmd.arg(&script).arg(path);
            if let Some(extra) = extra {
                cmd.arg(extra);
            }
            let out = cmd.output().expect("python3 must be installed");
            assert!(
                out.status.success(),
                "gen_tiny_gguf.py failed (pip install gguf numpy?): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Models {
            dir: dir.path().to_path_buf(),
            _dir: dir,
            chat,
            no_template,
        }
    })
}

/// A worker process driven line by line.
pub struct RawWorker {
    pub child: Child,
    stdin: ChildStdin,
    events: mpsc::Receiver<WorkerEvent>,
}

impl RawWorker {
    /// Start the worker, check its greeting and answer it.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(WORKER);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start worker");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let event: WorkerEvent = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("worker wrote a non-protocol line {line:?}: {e}"));
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        let mut worker = Self {
            child,
            stdin,
            events: rx,
        };
        match worker.next() {
            WorkerEvent::Hello {
                protocol_version, ..
            } => assert_eq!(protocol_version, PROTOCOL_VERSION),
            other => panic!("expected hello, got {other:?}"),
        }
        worker.send(&WorkerRequest::Hello {
            protocol_version: PROTOCOL_VERSION,
        });
        worker
    }

    pub fn send(&mut self, request: &WorkerRequest) {
        self.send_raw(&to_line(request));
    }

    pub fn send_raw(&mut self, line: &str) {
        self.stdin.write_all(line.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
    }

    /// The next event (30 s limit).
    pub fn next(&mut self) -> WorkerEvent {
        self.events
            .recv_timeout(Duration::from_secs(30))
            .expect("worker event within 30 s")
    }

    /// Events until the terminal one for `id` (inclusive).
    pub fn until_end(&mut self, id: &str) -> Vec<WorkerEvent> {
        let mut out = Vec::new();
        loop {
            let event = self.next();
            let end = event.request_id() == Some(id) && event.is_terminal();
            out.push(event);
            if end {
                return out;
            }
        }
    }

    /// Events of each of `ids` until each one's terminal event (inclusive); events of
    /// other requests are dropped.
    pub fn collect(&mut self, ids: &[String]) -> HashMap<String, Vec<WorkerEvent>> {
        let mut out: HashMap<String, Vec<WorkerEvent>> = HashMap::new();
        let mut open = ids.len();
        while open > 0 {
            let event = self.next();
            let Some(id) = event.request_id().map(str::to_owned) else {
                continue;
            };
            if !ids.contains(&id) {
                continue;
            }
            if event.is_terminal() {
                open -= 1;
            }
            out.entry(id).or_default().push(event);
        }
        out
    }

    /// Load with one slot (requests one after another).
    pub fn load(&mut self, path: &Path, n_ctx: u32, template: Option<&str>) -> WorkerEvent {
        self.load_parallel(path, n_ctx, template, 0)
    }

    /// Load with `n_parallel` slots.
    pub fn load_parallel(
        &mut self,
        path: &Path,
        n_ctx: u32,
        template: Option<&str>,
        n_parallel: u32,
    ) -> WorkerEvent {
        self.send(&WorkerRequest::Load {
            id: "load".into(),
            path: path.to_path_buf(),
            n_ctx,
            n_gpu_layers: 0,
            chat_template: template.map(str::to_owned),
            n_threads: None,
            n_parallel,
        });
        self.until_end("load").pop().unwrap()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for RawWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
