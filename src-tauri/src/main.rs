//! `baton-app`: Baton's desktop window. `baton-app --action new-chat` (or `ask-clipboard`,
//! `show`, `toggle`, `search`, `quit`) reaches the running instance.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use clap::Parser;

fn main() {
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
