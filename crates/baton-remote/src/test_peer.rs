//! A scriptable OpenAI-compatible HTTP server on 127.0.0.1, for tests only (feature
//! `test-peer`): it answers with what the test scripts (streamed tokens, HTTP errors, hangs,
//! streams that drop mid-answer) so fault handling can be tested against a real socket.
//! Nothing in Baton's own code paths uses it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the peer does with one `/chat/completions` request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Streams these pieces of text, then usage and `[DONE]`.
    Stream(Vec<String>),
    /// Streams the pieces with a pause before each one.
    Slow(Vec<String>, Duration),
    /// Answers with this status, extra headers and body.
    Status(u16, Vec<(String, String)>, String),
    /// Reads the request and never answers.
    Hang,
    /// Streams the pieces, then closes the connection without finishing.
    Drop(Vec<String>),
}

/// A request the peer received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Request line, e.g. `POST /v1/chat/completions HTTP/1.1`.
    pub line: String,
    /// The `authorization` header, if any.
    pub authorization: Option<String>,
    /// The body.
    pub body: String,
}

/// A running test peer. Dropping it stops accepting connections.
pub struct TestPeer {
    /// The base URL to configure an engine with (`http://127.0.0.1:PORT/v1`).
    pub base_url: String,
    script: Arc<Mutex<VecDeque<Behaviour>>>,
    fallback: Arc<Mutex<Behaviour>>,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestPeer {
    /// Starts a peer that answers every request with `default` unless a scripted behaviour
    /// is queued.
    pub async fn start(default: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr: SocketAddr = listener.local_addr().expect("local addr");
        let script: Arc<Mutex<VecDeque<Behaviour>>> = Arc::default();
        let fallback = Arc::new(Mutex::new(default));
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let task = {
            let (script, fallback, received) = (script.clone(), fallback.clone(), received.clone());
            tokio::spawn(async move {
                while let Ok((socket, _)) = listener.accept().await {
                    let (script, fallback, received) =
                        (script.clone(), fallback.clone(), received.clone());
                    tokio::spawn(async move {
                        let _ = serve(socket, script, fallback, received).await;
                    });
                }
            })
        };
        Self {
            base_url: format!("http://{addr}/v1"),
            script,
            fallback,
            received,
            task,
        }
    }

    /// Queues behaviours for the next chat requests, in order.
    pub fn push(&self, behaviours: impl IntoIterator<Item = Behaviour>) {
        self.script.lock().unwrap().extend(behaviours);
    }

    /// Changes what unscripted requests get.
    pub fn set_default(&self, behaviour: Behaviour) {
        *self.fallback.lock().unwrap() = behaviour;
    }

    /// The chat requests received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

async fn serve(
    mut socket: TcpStream,
    script: Arc<Mutex<VecDeque<Behaviour>>>,
    fallback: Arc<Mutex<Behaviour>>,
    received: Arc<Mutex<Vec<Received>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let header = |name: &str| {
        head.lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
            .map(|l| l[name.len() + 1..].trim().to_owned())
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = head.lines().next().unwrap_or_default().to_owned();
    if line.starts_with("GET") && line.contains("/models") {
        let body = r#"{"object":"list","data":[{"id":"peer-model","object":"model"}]}"#;
        return respond(&mut socket, 200, &[], body).await;
    }
    received.lock().unwrap().push(Received {
        line,
        authorization: header("authorization"),
        body: String::from_utf8_lossy(&buf[header_end..]).to_string(),
    });
    let behaviour = script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| fallback.lock().unwrap().clone());
    match behaviour {
        Behaviour::Status(code, headers, body) => respond(&mut socket, code, &headers, &body).await,
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        }
        Behaviour::Stream(pieces) => stream(&mut socket, &pieces, Duration::ZERO, true).await,
        Behaviour::Slow(pieces, pause) => stream(&mut socket, &pieces, pause, true).await,
        Behaviour::Drop(pieces) => stream(&mut socket, &pieces, Duration::ZERO, false).await,
    }
}

async fn respond(
    socket: &mut TcpStream,
    code: u16,
    headers: &[(String, String)],
    body: &str,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body.as_bytes()).await?;
    socket.shutdown().await
}

async fn stream(
    socket: &mut TcpStream,
    pieces: &[String],
    pause: Duration,
    finish: bool,
) -> std::io::Result<()> {
    socket
        .write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
        )
        .await?;
    for piece in pieces {
        tokio::time::sleep(pause).await;
        let chunk = serde_json::json!({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]});
        socket
            .write_all(format!("data: {chunk}\n\n").as_bytes())
            .await?;
        socket.flush().await?;
    }
    if finish {
        let end =
            serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
        let usage = serde_json::json!({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": pieces.len()}});
        socket
            .write_all(format!("data: {end}\n\ndata: {usage}\n\ndata: [DONE]\n\n").as_bytes())
            .await?;
    }
    socket.shutdown().await
}
