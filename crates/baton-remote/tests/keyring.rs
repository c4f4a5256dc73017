//! API keys through a real Secret Service: the test starts its own D-Bus session and
//! GNOME Keyring daemon (unlocked with a throwaway password, in a temporary home), and runs
//! the check in a child process inside it. A second child has no D-Bus at all and must get
//! the "no OS keyring" message, not a panic.

use baton_remote::{ApiKey, KeyStore, SecretsError};
use std::process::Command;

const CHILD: &str = "BATON_KEYRING_CHILD";

fn child_check(mode: &str) {
    let store = KeyStore::keyring();
    match mode {
        "service" => {
            store
                .set("test-engine", &ApiKey::new("sk-keyring-123"))
                .unwrap();
            assert_eq!(
                store.get("test-engine").unwrap(),
                Some(ApiKey::new("sk-keyring-123"))
            );
            store
                .set("test-engine", &ApiKey::new("sk-replaced"))
                .unwrap();
            assert_eq!(
                store.get("test-engine").unwrap(),
                Some(ApiKey::new("sk-replaced"))
            );
            store.delete("test-engine").unwrap();
            assert_eq!(store.get("test-engine").unwrap(), None);
            store.delete("test-engine").unwrap();
        }
        "none" => {
            let err = store.get("test-engine").unwrap_err();
            assert!(matches!(err, SecretsError::NoKeyring(_)), "{err}");
            let text = err.to_string();
            assert!(
                text.contains("BATON_SECRETS_PASSPHRASE") && text.contains("[secrets]"),
                "{text}"
            );
        }
        other => panic!("unknown mode {other}"),
    }
}

fn run_child(mode: &str, with_service: bool) {
    let home = tempfile::tempdir().unwrap();
    let runtime = home.path().join("run");
    std::fs::create_dir(&runtime).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let exe = std::env::current_exe().unwrap();
    let test = "keys_live_in_a_real_secret_service_and_a_missing_one_is_explained";
    let mut cmd = if with_service {
        let mut c = Command::new("dbus-run-session");
        c.args([
            "--",
            "sh",
            "-c",
            "printf testpw | gnome-keyring-daemon --unlock --components=secrets >/dev/null && exec \"$0\" --exact \"$1\" --nocapture",
        ]);
        c.arg(&exe).arg(test);
        c
    } else {
        let mut c = Command::new(&exe);
        c.args(["--exact", test, "--nocapture"]);
        c.env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("DISPLAY");
        c
    };
    let out = cmd
        .env(CHILD, mode)
        .env("HOME", home.path())
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("XDG_DATA_HOME", home.path().join("data"))
        .output()
        .expect("dbus-run-session and gnome-keyring are installed by scripts/setup.sh");
    assert!(
        out.status.success(),
        "{mode}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn keys_live_in_a_real_secret_service_and_a_missing_one_is_explained() {
    if let Ok(mode) = std::env::var(CHILD) {
        child_check(&mode);
        return;
    }
    run_child("service", true);
    run_child("none", false);
}
