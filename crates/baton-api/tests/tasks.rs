//! `/v1/tasks` as other programs see it: a task and a workflow with an approval created
//! over HTTP, run by the runtime's worker on the tiny generated model, followed through the
//! server-sent-events stream, approved, listed, fetched with their history and cancelled;
//! bad bodies get a 400 that says why, and the token is required.

#[path = "../../baton-runtime/tests/common/mod.rs"]
mod common;

use baton_core::CancellationToken;
use baton_runtime::WorkerOptions;
use futures::StreamExt as _;
use serde_json::{json, Value};

struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

/// Reads the event stream until `done` says so (or the stream ends); returns the events.
async fn follow(api: &Api, run: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let r = api
        .http
        .get(format!("{}/tasks/events?run={run}", api.base))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut stream = r.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, stream.next()).await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                events.push(serde_json::from_str::<Value>(data).unwrap());
            }
        }
        if done(&events) {
            break;
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_created_followed_approved_and_cancelled_over_http() {
    let t = common::runtime_with_tiny_model().await;
    let token = baton_api::new_token();
    let server = baton_api::serve(t.runtime.clone(), 0, token.clone())
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let worker = {
        let runtime = t.runtime.clone();
        let stop = stop.clone();
        tokio::spawn(async move { runtime.run_worker(WorkerOptions::new(&runtime), stop).await })
    };
    let api = Api {
        base: server.base_url(),
        token,
        http: reqwest::Client::new(),
    };

    // No token, no tasks.
    let r = reqwest::Client::new()
        .get(format!("{}/tasks", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // One chat task on the tiny model, followed to its end.
    let (status, created) = api
        .post(
            "/tasks",
            json!({"kind": "chat", "input": {"prompt": "tell me about ships", "model": "tiny", "max_tokens": 8}, "priority": 3}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let run = created["run"].as_str().unwrap().to_owned();
    let task = created["tasks"][0]["id"].as_str().unwrap().to_owned();
    let events = follow(&api, &run, |e| e.iter().any(|e| e["to"] == "succeeded")).await;
    let moves: Vec<&str> = events.iter().filter_map(|e| e["to"].as_str()).collect();
    assert_eq!(moves, ["ready", "running", "succeeded"], "{events:?}");
    let (status, shown) = api.get(&format!("/tasks/{task}")).await;
    assert_eq!(status, 200);
    assert_eq!(shown["task"]["state"], "succeeded");
    assert_eq!(shown["task"]["output"]["model"], "tiny");
    assert_eq!(shown["task"]["output"]["completion_tokens"], 8);
    assert_eq!(shown["events"].as_array().unwrap().len(), 3);

    // A workflow with an approval: write → approval → write, approved with an edit.
    let yaml = "name: approve-me\nversion: 1\ndescription: draft, approve, send\nparams: {type: object, properties: {}}\nsteps:\n  - {id: draft, kind: noop}\n  - {id: check, kind: approval, after: [draft]}\n  - {id: send, kind: write, after: [check], input: {path: sent.txt, content: '{{ steps.check.output.text }}'}}\n";
    t.runtime.import_template(yaml).await.unwrap();
    let (status, created) = api.post("/tasks", json!({"template": "approve-me"})).await;
    assert_eq!(status, 201, "{created}");
    let run = created["run"].as_str().unwrap().to_owned();
    let check = created["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["step"] == "check")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    follow(&api, &run, |e| {
        e.iter().any(|e| e["to"] == "waiting_approval")
    })
    .await;
    let (status, waiting) = api.get("/tasks?state=waiting_approval").await;
    assert_eq!(status, 200);
    assert_eq!(waiting["data"].as_array().unwrap().len(), 1);
    let (status, approved) = api
        .post(
            &format!("/tasks/{check}/approve"),
            json!({"text": "Approved text"}),
        )
        .await;
    assert_eq!(status, 200, "{approved}");
    let events = follow(&api, &run, |e| {
        e.iter()
            .any(|e| e["step"] == "send" && e["to"] == "succeeded")
    })
    .await;
    assert!(events
        .iter()
        .any(|e| e["step"] == "send" && e["to"] == "succeeded"));
    let written = std::fs::read_to_string(t.runtime.run_output_dir(&run).join("sent.txt")).unwrap();
    assert_eq!(written, "Approved text");

    // A long task cancelled while it runs.
    let (_, created) = api
        .post(
            "/tasks",
            json!({"kind": "noop", "input": {"sleep_ms": 600000}}),
        )
        .await;
    let run = created["run"].as_str().unwrap().to_owned();
    let long = created["tasks"][0]["id"].as_str().unwrap().to_owned();
    follow(&api, &run, |e| e.iter().any(|e| e["to"] == "running")).await;
    let (status, cancelled) = api.post(&format!("/tasks/{long}/cancel"), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(cancelled["cancelled"].as_array().unwrap().len(), 1);
    let (_, shown) = api.get(&format!("/tasks/{long}")).await;
    assert_eq!(shown["task"]["state"], "cancelled");

    // Bad bodies are refused with the reason.
    let (status, body) = api
        .post("/tasks", json!({"kind": "chat", "input": {"promt": "x"}}))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `promt`"),
        "{body}"
    );
    let (status, body) = api
        .post(
            "/tasks",
            json!({"template": "read-aloud", "params": {"speed": 2}}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`speed` is not a parameter"),
        "{body}"
    );
    let (status, body) = api.post("/tasks", json!({"nothing": true})).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = api.get("/tasks/ffffffffffff").await;
    assert_eq!(status, 404);

    stop.cancel();
    worker.await.unwrap().unwrap();
    server.stop().await;
}
