//! One running worker process and the plumbing around its stdio.
//!
//! Tasks per worker: a writer (lines from a channel into stdin), a reader (stdout lines,
//! parsed and routed to the channel registered for their request id), a stderr forwarder
//! (into `tracing`), and a waiter that owns the child, records how it exited and kills it on
//! request. When stdout closes every registered channel is dropped, so whoever waits on one
//! sees the end immediately and can ask [`Worker::exit_reason`] what happened.

use crate::protocol::{to_line, WorkerEvent, WorkerRequest, PROTOCOL_VERSION};
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot, watch};

type Routes = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<WorkerEvent>>>>;

/// Why talking to a worker failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WorkerFailure {
    /// The process is gone (or its pipes broke).
    Died(String),
    /// No answer in time.
    Timeout,
    /// The worker answered with an error event.
    Error(WorkerEvent),
}

/// A handle to a running worker process.
pub(crate) struct Worker {
    pub(crate) pid: u32,
    tx: mpsc::UnboundedSender<String>,
    routes: Routes,
    alive: Arc<AtomicBool>,
    exit: watch::Receiver<Option<String>>,
    kill: Mutex<Option<oneshot::Sender<()>>>,
}

impl Worker {
    /// Start the worker binary and complete the version handshake.
    pub(crate) async fn spawn(
        binary: &Path,
        env: &[(String, String)],
        handshake_timeout: Duration,
    ) -> Result<Self, String> {
        let mut child = Command::new(binary)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group: Ctrl-C in the terminal signals the foreground group,
            // and must cancel the generation (through the protocol), not kill the worker.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let pid = child.id().unwrap_or(0);
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("worker pipes unavailable".into());
        };

        let alive = Arc::new(AtomicBool::new(true));
        let routes: Routes = Arc::default();
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let (hello_tx, hello_rx) = oneshot::channel::<WorkerEvent>();
        let (exit_tx, exit_rx) = watch::channel(None);
        let (kill_tx, kill_rx) = oneshot::channel::<()>();

        // Writer.
        tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
            }
        });

        // Reader.
        {
            let routes = routes.clone();
            let alive = alive.clone();
            tokio::spawn(async move {
                let mut hello_tx = Some(hello_tx);
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let event: WorkerEvent = match serde_json::from_str(&line) {
                        Ok(event) => event,
                        Err(err) => {
                            tracing::warn!(pid, %err, line = %line, "unparsable line from LLM worker");
                            continue;
                        }
                    };
                    if let WorkerEvent::Hello { .. } = event {
                        if let Some(tx) = hello_tx.take() {
                            let _ = tx.send(event);
                        }
                        continue;
                    }
                    let Some(id) = event.request_id().map(str::to_owned) else {
                        tracing::warn!(pid, ?event, "LLM worker event without request id");
                        continue;
                    };
                    let mut routes = routes.lock().unwrap_or_else(|p| p.into_inner());
                    let terminal = event.is_terminal();
                    match routes.get(&id) {
                        Some(sender) => {
                            let _ = sender.send(event);
                        }
                        None => {
                            tracing::debug!(pid, %id, "LLM worker event for an unknown request")
                        }
                    }
                    if terminal {
                        routes.remove(&id);
                    }
                }
                alive.store(false, Ordering::SeqCst);
                routes.lock().unwrap_or_else(|p| p.into_inner()).clear();
            });
        }

        // Stderr → tracing.
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(target: "baton_llm::worker", pid, "{line}");
            }
        });

        // Waiter: owns the child.
        {
            let alive = alive.clone();
            tokio::spawn(async move {
                let status = tokio::select! {
                    status = child.wait() => status,
                    _ = kill_rx => {
                        let _ = child.start_kill();
                        child.wait().await
                    }
                };
                alive.store(false, Ordering::SeqCst);
                let reason = match status {
                    Ok(status) => describe_exit(status),
                    Err(err) => format!("could not wait for the worker: {err}"),
                };
                tracing::info!(pid, %reason, "LLM worker exited");
                let _ = exit_tx.send(Some(reason));
            });
        }

        let worker = Worker {
            pid,
            tx,
            routes,
            alive,
            exit: exit_rx,
            kill: Mutex::new(Some(kill_tx)),
        };
        match tokio::time::timeout(handshake_timeout, hello_rx).await {
            Ok(Ok(WorkerEvent::Hello {
                protocol_version, ..
            })) if protocol_version == PROTOCOL_VERSION => {}
            Ok(Ok(WorkerEvent::Hello {
                protocol_version, ..
            })) => {
                worker.kill();
                return Err(format!(
                    "{} speaks protocol version {protocol_version}, this program version {PROTOCOL_VERSION}: rebuild the worker together with the app",
                    binary.display()
                ));
            }
            Ok(_) => {
                let reason = worker.exit_reason(Duration::from_secs(1)).await;
                return Err(format!(
                    "{} exited before its handshake: {reason}",
                    binary.display()
                ));
            }
            Err(_) => {
                worker.kill();
                return Err(format!(
                    "{} did not greet within {} s",
                    binary.display(),
                    handshake_timeout.as_secs()
                ));
            }
        }
        worker.send(&WorkerRequest::Hello {
            protocol_version: PROTOCOL_VERSION,
        });
        tracing::info!(pid, "LLM worker started");
        Ok(worker)
    }

    /// Whether the process is still running.
    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Queue a request line; false when the worker is gone.
    pub(crate) fn send(&self, request: &WorkerRequest) -> bool {
        self.is_alive() && self.tx.send(to_line(request)).is_ok()
    }

    /// Register a channel for the events of request `id` (before sending the request).
    pub(crate) fn register(&self, id: &str) -> mpsc::UnboundedReceiver<WorkerEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        if self.is_alive() {
            routes.insert(id.to_owned(), tx);
        }
        rx
    }

    /// Forget the channel of request `id`.
    pub(crate) fn unregister(&self, id: &str) {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Send a request that has exactly one answer and wait for it.
    pub(crate) async fn call(
        &self,
        id: &str,
        request: &WorkerRequest,
        timeout: Duration,
    ) -> Result<WorkerEvent, WorkerFailure> {
        let mut rx = self.register(id);
        if !self.send(request) {
            self.unregister(id);
            return Err(WorkerFailure::Died(
                self.exit_reason(Duration::from_secs(1)).await,
            ));
        }
        match tokio::time::timeout(timeout, rx.recv()).await {
            Ok(Some(event @ WorkerEvent::Error { .. })) => Err(WorkerFailure::Error(event)),
            Ok(Some(event)) => Ok(event),
            Ok(None) => Err(WorkerFailure::Died(
                self.exit_reason(Duration::from_secs(1)).await,
            )),
            Err(_) => {
                self.unregister(id);
                Err(WorkerFailure::Timeout)
            }
        }
    }

    /// Kill the process (idempotent).
    pub(crate) fn kill(&self) {
        if let Some(kill) = self.kill.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = kill.send(());
        }
    }

    /// Ask the worker to exit, and kill it if it has not after `grace`.
    pub(crate) async fn shutdown(&self, grace: Duration) {
        self.send(&WorkerRequest::Shutdown);
        let mut exit = self.exit.clone();
        if tokio::time::timeout(grace, exit.wait_for(Option::is_some))
            .await
            .is_err()
        {
            self.kill();
        }
    }

    /// How the process ended, waiting up to `wait` for it to be reaped.
    pub(crate) async fn exit_reason(&self, wait: Duration) -> String {
        let mut exit = self.exit.clone();
        let reason = match tokio::time::timeout(wait, exit.wait_for(Option::is_some)).await {
            Ok(Ok(reason)) => reason.clone(),
            _ => None,
        };
        reason.unwrap_or_else(|| {
            format!(
                "worker pid {} stopped answering (its output closed)",
                self.pid
            )
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                6 => " (SIGABRT: llama.cpp aborted)",
                9 => " (SIGKILL: killed, possibly out of memory)",
                11 => " (SIGSEGV)",
                15 => " (SIGTERM)",
                _ => "",
            };
            return format!("the worker was killed by signal {signal}{name}");
        }
    }
    match status.code() {
        Some(0) => "the worker exited".into(),
        Some(code) => format!("the worker exited with status {code}"),
        None => "the worker exited".into(),
    }
}
