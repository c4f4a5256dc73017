//! Logging: a daily-rotated file in the state directory, and stderr with `-v`.

use std::path::Path;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{Builder, Rotation};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Sets up logging. Keep the returned guard alive until exit so the file is flushed.
/// A log directory that cannot be created only costs the file log, never the command.
pub fn init(log_dir: &Path, level: &str, max_files: usize, verbose: u8) -> Option<WorkerGuard> {
    let file_filter =
        EnvFilter::try_from_env("BATON_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let stderr_level = match verbose {
        0 => None,
        1 => Some("debug"),
        _ => Some("trace"),
    };
    let (file_layer, guard) = match std::fs::create_dir_all(log_dir)
        .map_err(|e| e.to_string())
        .and_then(|_| {
            Builder::new()
                .rotation(Rotation::DAILY)
                .filename_prefix("baton")
                .filename_suffix("log")
                .max_log_files(max_files)
                .build(log_dir)
                .map_err(|e| e.to_string())
        }) {
        Ok(appender) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let layer = fmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .with_filter(file_filter);
            (Some(layer), Some(guard))
        }
        Err(e) => {
            if verbose > 0 {
                eprintln!("warning: no log file in {}: {e}", log_dir.display());
            }
            (None, None)
        }
    };
    let stderr_layer = stderr_level.map(|lvl| {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(EnvFilter::new(lvl))
    });
    let _ = tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr_layer)
        .try_init();
    guard
}
