//! `baton serve` left running, as a person runs it: its token in a real key store (the
//! passphrase-encrypted file, and the OS keyring through a real Secret Service in a
//! D-Bus session of the test's own), shown and rotated by `baton serve --show-token` /
//! `--rotate-token` while a server runs, probed over real HTTP, and its audit log read back
//! with `baton audit`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{contains, files_containing, Env};

/// One HTTP/1.1 request over a plain socket; returns the status and the whole response.
fn http(port: u16, method: &str, token: Option<&str>, headers: &[&str]) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!("{method} /v1/models HTTP/1.1\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|h| h.to_lowercase().starts_with("host:"))
    {
        request.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    (status, response)
}

/// A running `baton serve --port 0` and the port it printed.
struct Served {
    child: Child,
    port: u16,
    stdout: Vec<String>,
}

impl Served {
    fn start(env: &Env) -> Self {
        let mut child = env
            .command(&["serve", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stdout = Vec::new();
        let port = loop {
            let Some(Ok(line)) = lines.next() else {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("baton serve ended before listening: {stdout:?} {err}");
            };
            stdout.push(line.clone());
            if let Some(url) = line.split("listening on http://127.0.0.1:").nth(1) {
                break url.trim_end_matches("/v1").parse::<u16>().unwrap();
            }
        };
        // Read the rest of what it prints until "Ctrl-C stops it." so its pipe never fills.
        for line in lines.by_ref() {
            let line = line.unwrap();
            let done = line.contains("Ctrl-C");
            stdout.push(line);
            if done {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            port,
            stdout,
        }
    }

    /// Ctrl-C, as a person stops it; the server writes its queued audit rows first.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "baton serve exited with {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "baton serve did not stop on Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file under `dir`, read whole.

#[test]
fn the_stored_token_is_shown_rotated_under_a_running_server_and_requests_are_audited() {
    let env = Env::with_key_file();
    let first = env.ok(&["serve", "--show-token"]).trim().to_owned();
    assert!(first.starts_with("baton-") && first.len() > 30, "{first}");
    assert_eq!(
        env.ok(&["serve", "--show-token"]).trim(),
        first,
        "created once, then kept"
    );
    let keys = env.path("data").join("keys.bin");
    assert!(keys.exists(), "the encrypted key file holds it");
    assert!(
        !contains(&std::fs::read(&keys).unwrap(), first.as_bytes()),
        "encrypted"
    );

    let served = Served::start(&env);
    let printed = served.stdout.join("\n");
    assert!(
        !printed.contains(&first),
        "the token is not printed at start: {printed}"
    );
    assert!(printed.contains("--show-token"), "{printed}");
    let port = served.port;
    assert_eq!(http(port, "GET", Some(&first), &[]).0, 200);
    assert_eq!(http(port, "GET", None, &[]).0, 401);
    let (status, body) = http(port, "GET", Some(&first), &["Host: attacker.example:8089"]);
    assert_eq!(status, 403, "{body}");
    let (status, body) = http(
        port,
        "GET",
        Some(&first),
        &["Origin: https://attacker.example"],
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("allowed_origins"), "{body}");

    // Rotated while the server runs: the old token stops working without a restart.
    let rotated = env.ok(&["serve", "--rotate-token"]).trim().to_owned();
    assert_ne!(rotated, first);
    assert_eq!(env.ok(&["serve", "--show-token"]).trim(), rotated);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut probes = 0;
    loop {
        probes += 1;
        let (status, body) = http(port, "GET", Some(&first), &[]);
        if status == 401 {
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(
            Instant::now() < deadline,
            "the old token still works after 10 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(http(port, "GET", Some(&rotated), &[]).0, 200);
    served.stop();

    // The audit log, as a script reads it.
    let rows: serde_json::Value =
        serde_json::from_str(&env.ok(&["audit", "--json", "--limit", "0"])).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 5 + probes, "{rows:#?}");
    let statuses: Vec<u64> = rows.iter().map(|r| r["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses[0], 200, "newest first: {statuses:?}");
    assert_eq!(statuses[1], 401);
    for (status, outcome) in [
        (200, "ok"),
        (401, "unauthorized"),
        (403, "host_refused"),
        (403, "origin_refused"),
    ] {
        assert!(
            rows.iter()
                .any(|r| r["status"] == status && r["outcome"] == outcome),
            "{status} {outcome}: {rows:#?}"
        );
    }
    for r in rows {
        assert_eq!(r["method"], "GET");
        assert_eq!(r["path"], "/v1/models");
        assert!(r["client"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(r["prompt"].is_null());
        assert!(r["duration_ms"].as_i64().unwrap() >= 0);
    }
    let two = env.ok(&["audit", "--limit", "2", "--since", "1h"]);
    assert_eq!(two.lines().count(), 3, "a header and two rows: {two}");
    assert!(
        two.contains("/v1/models") && two.contains("unauthorized"),
        "{two}"
    );
    let none = env.ok(&["audit", "--since", "2999-01-01"]);
    assert!(
        none.contains("No API requests recorded since then"),
        "{none}"
    );
    let out = env.run(&["audit", "--since", "last tuesday"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a time") && err.contains("7d"), "{err}");

    // Neither token is in a log, the database or the config.
    for token in [&first, &rotated] {
        let holding = files_containing(env.dir.path(), token.as_bytes());
        assert!(holding.is_empty(), "{holding:?} hold a token");
    }
}

#[test]
fn a_missing_key_store_is_explained_and_an_explicit_token_needs_none() {
    let env = Env::bare();
    // The default store is the OS keyring; this child has no D-Bus session to find one.
    let out = env
        .command(&["serve", "--show-token"])
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("DISPLAY")
        .env("XDG_RUNTIME_DIR", env.dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no OS keyring")
            && err.contains("[secrets]")
            && err.contains("BATON_API_TOKEN"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    // BATON_API_TOKEN needs no key store.
    let mut child = env
        .command(&["serve", "--port", "0"])
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("DISPLAY")
        .env("XDG_RUNTIME_DIR", env.dir.path())
        .env("BATON_API_TOKEN", "baton-given-by-env")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut port = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        assert!(!line.contains("baton-given-by-env"), "{line}");
        if let Some(url) = line.split("listening on http://127.0.0.1:").nth(1) {
            port = Some(url.trim_end_matches("/v1").parse::<u16>().unwrap());
        }
        if line.contains("Ctrl-C") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let port = port.expect("it listens");
    assert_eq!(http(port, "GET", Some("baton-given-by-env"), &[]).0, 200);
    assert_eq!(http(port, "GET", Some("baton-other"), &[]).0, 401);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn the_token_lives_in_a_real_secret_service() {
    // A D-Bus session and GNOME Keyring of the test's own (in a temporary home), as in
    // baton-remote's keyring test; the script runs baton inside it.
    let env = Env::bare();
    let home = env.dir.path().join("home");
    let runtime_dir = env.dir.path().join("run");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&runtime_dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&runtime_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let script = r#"
        printf testpw | gnome-keyring-daemon --unlock --components=secrets >/dev/null || exit 3
        a=$("$0" serve --show-token) || exit 4
        b=$("$0" serve --show-token) || exit 5
        c=$("$0" serve --rotate-token) || exit 6
        d=$("$0" serve --show-token) || exit 7
        echo "$a $b $c $d"
    "#;
    let baton = env!("CARGO_BIN_EXE_baton");
    let mut cmd = Command::new("dbus-run-session");
    cmd.args(["--", "sh", "-c", script, baton])
        .env("BATON_DATA_DIR", env.path("data"))
        .env("BATON_CONFIG", env.path("config.toml"))
        .env("BATON_MODELS_DIR", env.dir.path().join("models"))
        .env("XDG_STATE_HOME", env.dir.path().join("state"))
        .env("HOME", &home)
        .env("XDG_RUNTIME_DIR", &runtime_dir)
        .env("XDG_DATA_HOME", home.join("data"))
        .env_remove("BATON_SECRETS_PASSPHRASE")
        .env_remove("BATON_API_TOKEN");
    let out = cmd
        .output()
        .expect("dbus-run-session and gnome-keyring are installed by scripts/setup.sh");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let tokens: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(tokens.len(), 4, "{text}");
    assert!(tokens[0].starts_with("baton-"));
    assert_eq!(tokens[0], tokens[1], "kept in the keyring");
    assert_ne!(tokens[2], tokens[0], "rotated");
    assert_eq!(tokens[3], tokens[2], "the new one is kept");
    assert!(
        !env.path("data").join("keys.bin").exists(),
        "the keyring, not a file"
    );
}
