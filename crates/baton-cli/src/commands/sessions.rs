//! `baton sessions …`: list, new, show, rename, delete, search, export, append.

use crate::cli::{AppendArgs, ExportFormat, RoleArg, SessionsCommand};
use crate::commands::print_json;
use anyhow::Context;
use baton_core::Role;
use baton_runtime::Runtime;
use baton_store::{Message, Session};
use std::io::Read;

/// Runs a sessions command.
pub async fn run(cmd: SessionsCommand, runtime: &Runtime, json: bool) -> anyhow::Result<()> {
    let store = runtime.store();
    match cmd {
        SessionsCommand::List { limit } => {
            let sessions = store.list_sessions(limit).await?;
            if json {
                return print_json(&sessions);
            }
            if sessions.is_empty() {
                println!("No sessions yet. Start one with `baton sessions new \"title\"`.");
                return Ok(());
            }
            println!("{:<10} {:<17} {:>5}  TITLE", "ID", "UPDATED", "MSGS");
            for s in sessions {
                println!(
                    "{:<10} {:<17} {:>5}  {}",
                    short(&s.session.id.0),
                    s.session.updated_at.format("%Y-%m-%d %H:%M"),
                    s.message_count,
                    s.session.title
                );
            }
            Ok(())
        }
        SessionsCommand::New { title } => {
            let session = runtime.new_session(&title).await?;
            if json {
                return print_json(&session);
            }
            println!("{}", session.id);
            Ok(())
        }
        SessionsCommand::Show { id } => {
            let session = store.find_session(&id).await?;
            let messages = store.messages(&session.id).await?;
            let summary = store.session_summary(&session.id).await?;
            if json {
                return print_json(
                    &serde_json::json!({ "session": session, "messages": messages, "summary": summary }),
                );
            }
            print!("{}", to_markdown(&session, &messages));
            if let Some(s) = summary {
                println!(
                    "\n> Older turns (to message {}) were summarised by {} to fit the context window:\n> {}",
                    s.through_id,
                    s.model,
                    s.content.replace('\n', "\n> ")
                );
            }
            Ok(())
        }
        SessionsCommand::Rename { id, title } => {
            let session = store.find_session(&id).await?;
            let session = store.rename_session(&session.id, &title).await?;
            if json {
                return print_json(&session);
            }
            println!("Renamed {} to \"{}\"", short(&session.id.0), session.title);
            Ok(())
        }
        SessionsCommand::Delete { id } => {
            let session = store.find_session(&id).await?;
            store.delete_session(&session.id).await?;
            if json {
                return print_json(&serde_json::json!({ "deleted": session.id }));
            }
            println!("Deleted \"{}\" ({})", session.title, short(&session.id.0));
            Ok(())
        }
        SessionsCommand::Search { query, limit } => {
            let query = query.join(" ");
            let hits = store.search_messages(&query, limit).await?;
            if json {
                return print_json(&hits);
            }
            if hits.is_empty() {
                println!("No messages match \"{query}\".");
                return Ok(());
            }
            for hit in hits {
                println!(
                    "{}  {}  [{}] {}",
                    short(&hit.session_id.0),
                    hit.session_title,
                    hit.role,
                    hit.snippet.replace('\n', " ")
                );
            }
            Ok(())
        }
        SessionsCommand::Export { id, format, output } => {
            let session = store.find_session(&id).await?;
            let messages = store.messages(&session.id).await?;
            let text = match format {
                ExportFormat::Markdown => to_markdown(&session, &messages),
                ExportFormat::Json => {
                    let mut text = serde_json::to_string_pretty(
                        &serde_json::json!({ "session": session, "messages": messages }),
                    )?;
                    text.push('\n');
                    text
                }
            };
            match output {
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    if !json {
                        eprintln!("Exported {} messages to {}", messages.len(), path.display());
                    }
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        SessionsCommand::Append(AppendArgs { id, text, role }) => {
            let session = store.find_session(&id).await?;
            let text = if text == "-" {
                let mut buf = String::new();
                std::io::stdin()
                    .read_to_string(&mut buf)
                    .context("cannot read the message from standard input")?;
                buf
            } else {
                text
            };
            let role = match role {
                RoleArg::System => Role::System,
                RoleArg::User => Role::User,
                RoleArg::Assistant => Role::Assistant,
            };
            let message = runtime.add_message(&session.id, role, &text).await?;
            if json {
                return print_json(&message);
            }
            println!("{}", message.id);
            Ok(())
        }
    }
}

fn short(id: &str) -> &str {
    // v7 ids share their leading timestamp; the tail tells sessions apart.
    let start = id.len().saturating_sub(8);
    &id[start..]
}

/// Renders a session as a Markdown document.
pub fn to_markdown(session: &Session, messages: &[Message]) -> String {
    let mut out = format!("# {}\n\n", session.title);
    out.push_str(&format!("- Session: `{}`\n", session.id));
    out.push_str(&format!(
        "- Created: {}\n",
        session.created_at.format("%Y-%m-%d %H:%M UTC")
    ));
    if let Some(model) = &session.model {
        out.push_str(&format!("- Model: {model}\n"));
    }
    out.push_str(&format!("- Messages: {}\n", messages.len()));
    for m in messages {
        let who = match m.role {
            Role::System => "System",
            Role::User => "You",
            Role::Assistant => "Assistant",
        };
        let mut details = Vec::new();
        if let Some(model) = &m.model {
            details.push(model.clone());
        }
        if let Some(tokens) = m.completion_tokens {
            details.push(format!("{tokens} tokens"));
        }
        if let Some(tps) = m.tokens_per_second {
            details.push(format!("{tps:.1} tok/s"));
        }
        if let Some(ms) = m.latency_ms {
            details.push(format!("{:.2} s", ms as f64 / 1000.0));
        }
        let details = if details.is_empty() {
            String::new()
        } else {
            format!(" ({})", details.join(", "))
        };
        out.push_str(&format!(
            "\n## {who}{details} · {}\n\n{}\n",
            m.created_at.format("%Y-%m-%d %H:%M"),
            m.content.trim_end()
        ));
        if !m.sources.is_empty() {
            out.push_str("\nSources from memory:\n");
            for source in &m.sources {
                out.push_str(&format!("- {}\n", super::chat::source_line(source)));
            }
        }
    }
    out
}
