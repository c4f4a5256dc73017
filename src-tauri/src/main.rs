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

/// Tesseract's OpenMP runtime must start with `OMP_THREAD_LIMIT=1` (its spinning threads
/// made OCR about 8x slower on a busy machine): re-execute with it unless it is set.
fn single_threaded_openmp() {
    #[cfg(unix)]
    if let Some(err) = baton_vision::ocr::reexec_with_single_threaded_openmp() {
        eprintln!(
            "baton-app: could not re-execute with OMP_THREAD_LIMIT=1 ({err}); OCR may be slow"
        );
    }
}
