//! `baton-app`: Baton's desktop window. `baton-app --action new-chat` (or `ask-clipboard`,
//! `ocr-region`, `show`, `toggle`, `search`, `quit`) reaches the running instance.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use clap::Parser;

fn main() {
    single_threaded_openmp();
    let args = baton_app::Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BATON_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    baton_app::run(args);
}

/// Re-executes the app with `OMP_THREAD_LIMIT=1` unless it is set: Tesseract's OpenMP
/// runtime reads it only when it loads, and its spinning threads made OCR about 8x slower
/// on a busy machine. Returns when the variable is set or the re-execution failed.
#[cfg(unix)]
fn single_threaded_openmp() {
    use std::os::unix::process::CommandExt;
    if baton_vision::ocr::openmp_limit_set() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("OMP_THREAD_LIMIT", "1")
        .exec();
    eprintln!("baton-app: could not re-execute with OMP_THREAD_LIMIT=1 ({err}); OCR may be slow");
}

#[cfg(not(unix))]
fn single_threaded_openmp() {}
