//! Durability: a child process appends messages and is killed with SIGKILL at random
//! points, 100 times. Every append that returned must still be there afterwards, and the
//! database must pass `PRAGMA integrity_check`.
//!
//! The child is this same test binary re-executed with `BATON_DURABILITY_CHILD` set, so the
//! test needs no helper binary.

use baton_core::Role;
use baton_store::{NewMessage, Store};
use rand::Rng;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const CHILD_ENV: &str = "BATON_DURABILITY_CHILD";
const KILLS: usize = 100;

/// Child mode: append forever, acknowledging each message on stdout after it returned.
#[tokio::test]
async fn durability_child_entry() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // Only does something when re-executed by the parent test.
    };
    let store = Store::open_in(std::path::Path::new(&dir))
        .await
        .expect("child opens store");
    let existing = store.list_sessions(1).await.expect("list sessions");
    let session = match existing.into_iter().next() {
        Some(summary) => summary.session,
        None => store
            .create_session("durability")
            .await
            .expect("create session"),
    };
    let mut stdout = std::io::stdout().lock();
    for n in 0u64.. {
        let content = format!("{}-{n} durable message", std::process::id());
        store
            .append_message(&session.id, NewMessage::new(Role::User, content.clone()))
            .await
            .expect("append");
        writeln!(stdout, "ACK {content}").expect("ack");
        stdout.flush().expect("flush");
    }
}

#[test]
fn acknowledged_messages_survive_sigkill() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut acked: Vec<String> = Vec::new();
    for round in 0..KILLS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "durability_child_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(content) = line.strip_prefix("ACK ") {
                    if tx.send(content.to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(5..120)));
        // SIGKILL: no destructors, no flushing, no checkpoint.
        child.kill().expect("kill child");
        child.wait().unwrap();
        reader.join().unwrap();
        let before = acked.len();
        acked.extend(rx.try_iter());
        eprintln!("round {round}: {} acknowledged", acked.len() - before);
    }
    assert!(
        acked.len() > 100,
        "the children acknowledged too few appends to mean anything: {}",
        acked.len()
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Store::open_in(dir.path()).await.unwrap();
        assert_eq!(
            store.integrity_check().await.unwrap(),
            vec!["ok".to_string()]
        );
        let sessions = store.list_sessions(10).await.unwrap();
        assert_eq!(sessions.len(), 1, "exactly one session was created");
        let session = sessions[0].session.clone();
        let stored: HashSet<String> = store
            .messages(&session.id)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.content)
            .collect();
        let missing: Vec<&String> = acked.iter().filter(|c| !stored.contains(*c)).collect();
        assert!(
            missing.is_empty(),
            "{} acknowledged messages lost, e.g. {:?}",
            missing.len(),
            missing.first()
        );
        eprintln!(
            "{} acknowledged, {} stored, none lost",
            acked.len(),
            stored.len()
        );
    });
}
