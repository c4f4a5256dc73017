//! The API left running: a real server over a real runtime and SQLite store, probed over
//! real HTTP. Its token lives in a real key store (the passphrase-encrypted file; the OS
//! keyring is exercised by the CLI tests under their own Secret Service). None of these
//! requests needs a model: `GET /v1/models` lists the registered ones (none here), and a
//! chat request for an unknown model is answered 404 before any engine runs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use baton_api::{ServeOptions, Server, TokenSource};
use baton_remote::KeyStore;
use baton_runtime::{Paths, Runtime};
use baton_store::{ApiCall, AuditFilter};
use futures::StreamExt;
use reqwest::header::{HeaderValue, HOST, ORIGIN, RETRY_AFTER};

const PAGE: &str = "http://localhost:5173";
const SECRET_PROMPT: &str = "the launch code is PAPAYA-7731";

/// A runtime in a temporary directory whose config file holds `config`.
async fn runtime(config: &str) -> (tempfile::TempDir, Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, config).unwrap();
    let paths = Paths {
        data_dir: dir.path().join("data"),
        config_file: file,
        state_dir: dir.path().join("state"),
        models_dir: dir.path().join("models"),
    };
    let runtime = Runtime::open(paths).await.unwrap();
    (dir, runtime)
}

fn key_file(dir: &tempfile::TempDir) -> KeyStore {
    KeyStore::encrypted_file(dir.path().join("keys.bin"), Some("test passphrase".into()))
}

async fn get(
    http: &reqwest::Client,
    server: &Server,
    token: Option<&str>,
    headers: &[(reqwest::header::HeaderName, &str)],
) -> reqwest::Response {
    let mut r = http.get(format!("{}/models", server.base_url()));
    if let Some(token) = token {
        r = r.bearer_auth(token);
    }
    for (name, value) in headers {
        r = r.header(name, HeaderValue::from_str(value).unwrap());
    }
    r.send().await.unwrap()
}

async fn message(r: reqwest::Response) -> String {
    let body: serde_json::Value = r.json().await.unwrap();
    body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("an OpenAI-shaped error: {body}"))
        .to_owned()
}

/// Posts a chat request for a model that does not exist, with the secret prompt.
async fn ask_unknown_model(http: &reqwest::Client, server: &Server, token: &str) -> u16 {
    http.post(format!("{}/chat/completions", server.base_url()))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "model": "no-such-model",
            "messages": [{"role": "user", "content": SECRET_PROMPT}],
        }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The audit rows once at least `n` are written (they are written off the request path).
async fn audit_rows(runtime: &Runtime, n: usize) -> Vec<ApiCall> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = runtime
            .store()
            .api_calls(&AuditFilter::default())
            .await
            .unwrap();
        if rows.len() >= n {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} audit rows were written",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn tokens_hosts_and_origins_are_checked_and_every_request_is_audited() {
    let (dir, runtime) = runtime(&format!("[api]\nallowed_origins = [\"{PAGE}\"]\n")).await;
    let store = key_file(&dir);
    let token = baton_api::stored_token(&store).unwrap();
    assert_eq!(
        baton_api::stored_token(&store).unwrap(),
        token,
        "the token is created once and kept"
    );
    let options = ServeOptions::new(&runtime.config().api, 0, TokenSource::Stored(store.clone()));
    let server = baton_api::serve_with(runtime.clone(), options)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let token = token.expose().to_owned();

    // The bearer token.
    let r = get(&http, &server, None, &[]).await;
    assert_eq!(r.status(), 401);
    let text = message(r).await;
    assert!(
        text.contains("bearer token") && text.contains("--show-token"),
        "{text}"
    );
    let wrong = baton_api::new_token();
    assert_eq!(get(&http, &server, Some(&wrong), &[]).await.status(), 401);
    let r = get(&http, &server, Some(&token), &[]).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("access-control-allow-origin").is_none(),
        "no CORS without an Origin"
    );

    // Web pages: refused unless allowed; an allowed one gets CORS headers.
    let r = get(
        &http,
        &server,
        Some(&token),
        &[(ORIGIN, "https://evil.example")],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let text = message(r).await;
    assert!(
        text.contains("https://evil.example") && text.contains("allowed_origins"),
        "{text}"
    );
    let r = get(&http, &server, Some(&token), &[(ORIGIN, PAGE)]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], PAGE);
    assert!(r.headers()["vary"]
        .to_str()
        .unwrap()
        .to_lowercase()
        .contains("origin"));
    let r = get(&http, &server, None, &[(ORIGIN, PAGE)]).await;
    assert_eq!(r.status(), 401, "an allowed page still needs the token");
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        PAGE,
        "and may read why"
    );
    // The browser's preflight carries no token.
    let preflight = |origin: &'static str| {
        http.request(
            reqwest::Method::OPTIONS,
            format!("{}/chat/completions", server.base_url()),
        )
        .header(ORIGIN, origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
    };
    let r = preflight(PAGE).await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], PAGE);
    assert!(r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert!(r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
    assert_eq!(
        preflight("https://evil.example").await.unwrap().status(),
        403
    );

    // DNS rebinding: a page whose name resolves to 127.0.0.1 sends its own name as Host.
    let r = get(
        &http,
        &server,
        Some(&token),
        &[(HOST, "rebind.evil.example:8089")],
    )
    .await;
    assert_eq!(r.status(), 403);
    let text = message(r).await;
    assert!(
        text.contains("rebind.evil.example") && text.contains("127.0.0.1"),
        "{text}"
    );
    for host in ["localhost", "localhost:8089", "[::1]:8089"] {
        let r = get(&http, &server, Some(&token), &[(HOST, host)]).await;
        assert_eq!(r.status(), 200, "{host}");
    }

    // A prompt, answered 404 (no such model), refused without a token: never in the audit.
    assert_eq!(ask_unknown_model(&http, &server, &token).await, 404);
    assert_eq!(ask_unknown_model(&http, &server, &wrong).await, 401);

    // Unknown paths are behind the same checks, and say what exists.
    let r = http
        .get(format!("http://{}/admin", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("http://{}/v1/nothing", server.addr))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let text = message(r).await;
    assert!(text.contains("/v1/chat/completions"), "{text}");

    // Rotation: the running server refuses the old token within a second and takes the new one.
    let rotated = baton_api::rotate_token(&store).unwrap();
    assert_ne!(rotated.expose(), token);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut probes = 0;
    loop {
        probes += 1;
        let status = get(&http, &server, Some(&token), &[]).await.status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            Instant::now() < deadline,
            "the old token still works after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        get(&http, &server, Some(rotated.expose()), &[])
            .await
            .status(),
        200
    );
    assert_eq!(get(&http, &server, Some(&token), &[]).await.status(), 401);

    // Every request above has its row: 3 + 5 + 4 + 2 + 2 + probes + 2.
    let expected = 18 + probes;
    let rows = audit_rows(&runtime, expected).await;
    assert_eq!(rows.len(), expected);
    let mut outcomes: BTreeMap<(u16, &str), usize> = BTreeMap::new();
    for row in &rows {
        *outcomes
            .entry((row.status, row.outcome.as_str()))
            .or_default() += 1;
        assert!(row.client.starts_with("127.0.0.1:"), "{row:?}");
        assert!(!row.path.contains('?'));
        assert_eq!(row.prompt, None, "prompts are not kept by default");
        assert!(!format!("{row:?}").contains("PAPAYA"), "{row:?}");
    }
    assert_eq!(outcomes[&(401, "unauthorized")], 7);
    assert_eq!(outcomes[&(403, "origin_refused")], 2);
    assert_eq!(outcomes[&(403, "host_refused")], 1);
    assert_eq!(outcomes[&(404, "refused")], 2);
    assert_eq!(outcomes[&(204, "ok")], 1);
    assert_eq!(outcomes[&(200, "ok")], 5 + probes);
    let chat = rows
        .iter()
        .find(|r| r.status == 404 && r.method == "POST")
        .unwrap();
    assert_eq!(chat.method, "POST");
    assert_eq!(chat.path, "/v1/chat/completions");
    assert_eq!(chat.model.as_deref(), Some("no-such-model"));
    let refused_chat = rows
        .iter()
        .find(|r| r.status == 401 && r.method == "POST")
        .unwrap();
    assert_eq!(refused_chat.model, None, "a refused request is not read");
    // The database file holds no prompt either.
    let db = std::fs::read(dir.path().join("data").join(baton_store::DATABASE_FILE)).unwrap();
    let wal = std::fs::read(dir.path().join("data").join("baton.sqlite3-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(!bytes.windows(6).any(|w| w == b"PAPAYA"));
    }
    server.stop().await;
}

#[tokio::test]
async fn a_burst_is_limited_with_retry_after_and_the_client_recovers() {
    let (_dir, runtime) = runtime("").await;
    assert_eq!(runtime.config().api.requests_per_minute, 600);
    assert_eq!(runtime.config().api.burst, 100);
    let token = baton_api::new_token();
    let server = baton_api::serve(runtime.clone(), 0, token.clone())
        .await
        .unwrap();
    let http = reqwest::Client::new();

    let started = Instant::now();
    let statuses: Vec<(u16, Option<u64>, String)> = futures::stream::iter(0..1000)
        .map(|_| {
            let (http, url, token) = (http.clone(), server.base_url(), token.clone());
            async move {
                let r = http
                    .get(format!("{url}/models"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let retry = r
                    .headers()
                    .get(RETRY_AFTER)
                    .map(|v| v.to_str().unwrap().parse().unwrap());
                let body: serde_json::Value = r.json().await.unwrap();
                let kind = body["error"]["type"].as_str().unwrap_or("").to_owned();
                (status, retry, kind)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let burst_secs = started.elapsed().as_secs_f64();
    let ok = statuses.iter().filter(|s| s.0 == 200).count();
    let limited: Vec<_> = statuses.iter().filter(|s| s.0 == 429).collect();
    assert_eq!(ok + limited.len(), 1000, "only 200 or 429");
    assert!(
        !limited.is_empty(),
        "1000 requests in {burst_secs:.1} s were all answered"
    );
    assert!(ok >= 100, "the burst of 100 passes: {ok}");
    let max_ok = 100.0 + 10.0 * burst_secs + 1.0;
    assert!(
        (ok as f64) <= max_ok,
        "{ok} answered in {burst_secs:.1} s, more than the bucket allows"
    );
    for (_, retry, kind) in &limited {
        let retry = retry.expect("a 429 says when to retry");
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
        assert_eq!(kind, "rate_limit_error");
    }
    eprintln!(
        "1000 requests in {burst_secs:.2} s: {ok} answered, {} limited",
        limited.len()
    );

    // Another client (no token here) has its own bucket: it gets its 401, not a 429.
    assert_eq!(get(&http, &server, None, &[]).await.status(), 401);

    // A polite client waits as long as Retry-After says and is answered.
    let deadline = Instant::now() + Duration::from_secs(30);
    let waited = Instant::now();
    loop {
        let r = get(&http, &server, Some(&token), &[]).await;
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 429);
        let secs: u64 = r.headers()[RETRY_AFTER].to_str().unwrap().parse().unwrap();
        assert!(Instant::now() < deadline, "still limited after 30 s");
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    assert!(waited.elapsed() < Duration::from_secs(5));

    let rows = audit_rows(&runtime, 1002).await;
    let rate_limited = rows.iter().filter(|r| r.outcome == "rate_limited").count();
    assert!(rate_limited >= limited.len(), "every 429 is audited");
    assert!(rows
        .iter()
        .filter(|r| r.outcome == "rate_limited")
        .all(|r| r.status == 429 && r.path == "/v1/models"));
    server.stop().await;
}

#[tokio::test]
async fn prompts_are_audited_only_when_opted_in() {
    let (_dir, runtime) = runtime("[api]\naudit_prompts = true\n").await;
    let token = baton_api::new_token();
    let server = baton_api::serve(runtime.clone(), 0, token.clone())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    assert_eq!(ask_unknown_model(&http, &server, &token).await, 404);
    server.stop().await;
    let rows = runtime
        .store()
        .api_calls(&AuditFilter::default())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "stop writes the queued rows: {rows:?}");
    assert_eq!(
        rows[0].prompt.as_deref(),
        Some(format!("user: {SECRET_PROMPT}").as_str())
    );
}
