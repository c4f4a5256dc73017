//! One module per top-level command.

pub mod bench;
pub mod bench_llm;
pub mod bench_stt;
pub mod chat;
pub mod config;
pub mod engines;
pub mod models;
pub mod sessions;
pub mod vision;
pub mod voice;

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
