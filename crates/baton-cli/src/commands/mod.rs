//! One module per top-level command.

pub mod audit;
pub mod bench;
pub mod bench_api;
pub mod bench_llm;
pub mod bench_memory;
pub mod bench_stt;
pub mod bench_tasks;
pub mod chat;
pub mod config;
pub mod engines;
pub mod eval;
pub mod memory;
pub mod models;
pub mod serve;
pub mod sessions;
pub mod tasks;
pub mod vision;
pub mod voice;

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Cancels a token when Ctrl-C is pressed, for as long as it lives: a generation or a
/// listening stops, not the program (the next one gets a fresh watch).
pub struct CtrlC {
    token: baton_core::CancellationToken,
    watcher: tokio::task::JoinHandle<()>,
}

impl CtrlC {
    /// Starts watching for Ctrl-C.
    pub fn watch() -> Self {
        let token = baton_core::CancellationToken::new();
        let cancel = token.clone();
        let watcher = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        });
        Self { token, watcher }
    }

    /// The token Ctrl-C cancels.
    pub fn token(&self) -> baton_core::CancellationToken {
        self.token.clone()
    }
}

impl Drop for CtrlC {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}
