//! `baton chat`: one-shot questions and an interactive REPL, streaming tokens as they come.
//!
//! Ctrl-C during a generation cancels that generation (the partial answer is kept); at the
//! prompt it clears the line; Ctrl-D or `/quit` leaves.

use crate::commands::print_json;
use anyhow::Context;
use baton_core::{ChatEvent, OrchestrationEvent, SessionId};
use baton_runtime::{AnswerOptions, ChatTurn, Mode, Runtime, RuntimeError, TurnOutcome};
use baton_store::Session;
use std::io::{IsTerminal, Read, Write};
use std::sync::Mutex;

/// Options of `baton chat`.
#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// The question; without one, reads standard input when it is not a terminal, or starts
    /// the interactive chat
    pub question: Vec<String>,
    /// Model to use (a name from `baton models list` or `ENGINE/MODEL` from `baton engines
    /// list`); `auto` or none lets the router choose and say why
    #[arg(long, short)]
    pub model: Option<String>,
    /// How to answer: single (one model, with fallbacks), fanout (several models in
    /// parallel, merged) or refine (critique-and-refine rounds)
    #[arg(long, default_value = "single", value_parser = parse_mode)]
    pub mode: Mode,
    /// Talk instead of typing: each thing you say is sent, and the answer is read aloud
    /// sentence by sentence as it is generated (Ctrl-C while listening leaves)
    #[arg(long, conflicts_with = "question")]
    pub voice: bool,
    /// With --voice: stop after this many spoken questions [default: until Ctrl-C]
    #[arg(long, requires = "voice", default_value_t = 0)]
    pub turns: usize,
    /// Continue this session (id or a unique part of it) instead of starting a new one
    #[arg(long, short)]
    pub session: Option<String>,
}

fn parse_mode(text: &str) -> Result<Mode, String> {
    text.parse()
}

/// Runs `baton chat`.
pub async fn run(args: ChatArgs, runtime: &Runtime, json: bool) -> anyhow::Result<()> {
    let mut question = args.question.join(" ");
    if question.trim().is_empty() && !std::io::stdin().is_terminal() {
        std::io::stdin()
            .read_to_string(&mut question)
            .context("cannot read the question from standard input")?;
    }
    let session = match &args.session {
        Some(id) => Some(runtime.store().find_session(id).await?),
        None => None,
    };
    if args.voice {
        return voice_chat(runtime, session, args.model, args.mode, args.turns).await;
    }
    if question.trim().is_empty() {
        if json {
            anyhow::bail!("--json needs a question: `baton chat --json \"question\"`");
        }
        return repl(runtime, session, args.model, args.mode).await;
    }
    let session = match session {
        Some(s) => s,
        None => runtime.new_session(&title_from(&question)).await?,
    };
    let (outcome, steps) = ask(
        runtime,
        &session.id,
        &question,
        args.model.clone(),
        args.mode,
        !json,
        None,
    )
    .await?;
    if json {
        print_json(&serde_json::json!({
            "session": session.id,
            "message_id": outcome.assistant.id,
            "answer": outcome.assistant.content,
            "sources": outcome.assistant.sources,
            "model": outcome.response.model,
            "mode": args.mode.to_string(),
            "steps": steps,
            "usage": outcome.response.usage,
            "finish_reason": outcome.response.finish_reason,
            "first_token_ms": outcome.response.first_token_ms,
            "total_ms": outcome.response.total_ms,
            "tokens_per_second": outcome.response.tokens_per_second(),
        }))?;
    }
    Ok(())
}

/// A session title from the first words of the first question.
fn title_from(question: &str) -> String {
    let words: Vec<&str> = question.split_whitespace().collect();
    let mut title = String::new();
    for w in words {
        if title.len() + w.len() > 60 {
            title.push('…');
            break;
        }
        if !title.is_empty() {
            title.push(' ');
        }
        title.push_str(w);
    }
    if title.is_empty() {
        "New chat".into()
    } else {
        title
    }
}

/// Sends one question, streaming the answer to stdout and progress to stderr when `stream`
/// is set. Ctrl-C cancels the generation. Returns the outcome and the progress events.
async fn ask(
    runtime: &Runtime,
    session: &SessionId,
    question: &str,
    model: Option<String>,
    mode: Mode,
    stream: bool,
    speak: Option<&baton_tts::Reader>,
) -> anyhow::Result<(TurnOutcome, Vec<OrchestrationEvent>)> {
    let ctrl_c = crate::commands::CtrlC::watch();
    let on_event = move |event: ChatEvent| {
        match (speak, &event) {
            (Some(reader), ChatEvent::Token { text }) => reader.push(text),
            (Some(reader), ChatEvent::Restart { .. }) => reader.restart(),
            _ => {}
        }
        if !stream {
            return;
        }
        let mut out = std::io::stdout().lock();
        match event {
            ChatEvent::Token { text } => {
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            }
            ChatEvent::Notice { message } => {
                let _ = out.flush();
                eprintln!("\x1b[2m[{message}]\x1b[0m");
            }
            ChatEvent::Restart { reason } => {
                let _ = out.flush();
                eprintln!("\n\x1b[2m[the text above is withdrawn: {reason}]\x1b[0m");
            }
            ChatEvent::Started { .. } => {}
        }
    };
    let steps = Mutex::new(Vec::new());
    let on_progress = |event: OrchestrationEvent| {
        // A fallback also arrives as a notice on the answer's stream: print it once.
        if stream && !matches!(event, OrchestrationEvent::Fallback { .. }) {
            eprintln!("\x1b[2m{}\x1b[0m", event.summary());
        }
        steps.lock().expect("steps lock").push(event);
    };
    let turn = ChatTurn {
        session: session.clone(),
        text: question.to_owned(),
        model: model.clone(),
    };
    let options = AnswerOptions::new(model, mode);
    let result = runtime
        .send_with(turn, options, &on_event, &on_progress, ctrl_c.token())
        .await;
    drop(ctrl_c);
    let outcome = result?;
    if stream {
        println!();
        for source in &outcome.assistant.sources {
            eprintln!("\x1b[2m{}\x1b[0m", source_line(source));
        }
        eprintln!("\x1b[2m{}\x1b[0m", stats_line(&outcome));
    }
    Ok((outcome, steps.into_inner().expect("steps lock")))
}

/// A memory snippet the answer was given: `[n] where — the start of it`.
pub fn source_line(source: &baton_store::MessageSource) -> String {
    let place = match source.kind.as_str() {
        "message" => format!("conversation \"{}\"", source.title),
        "chunk" => source
            .location
            .clone()
            .unwrap_or_else(|| source.title.clone()),
        _ => source.title.clone(),
    };
    let start: String = source.text.chars().take(80).collect();
    let more = if source.text.chars().count() > 80 {
        "…"
    } else {
        ""
    };
    format!("[{}] {place} — {start}{more}", source.n)
}

fn stats_line(outcome: &TurnOutcome) -> String {
    let r = &outcome.response;
    let mut parts = vec![
        r.model.clone(),
        format!("{} tokens", r.usage.completion_tokens),
    ];
    if let Some(tps) = r.tokens_per_second() {
        parts.push(format!("{tps:.1} tok/s"));
    }
    if let Some(ms) = r.first_token_ms {
        parts.push(format!("first token {ms} ms"));
    }
    if r.usage.cached_prompt_tokens > 0 {
        parts.push(format!(
            "{}/{} prompt tokens reused",
            r.usage.cached_prompt_tokens, r.usage.prompt_tokens
        ));
    }
    if let Some(cost) = r.cost_usd.filter(|c| *c > 0.0) {
        parts.push(format!("${cost:.6}"));
    }
    if r.finish_reason == baton_core::FinishReason::Cancelled {
        parts.push("stopped".into());
    }
    parts.join(" · ")
}

const REPL_HELP: &str = "Type a message and press Enter. Commands:
  /new [title]     start a new session
  /model [name]    show or switch the model (`auto` lets the router choose)
  /models          list registered models
  /sessions        list recent sessions
  /open ID         continue another session
  /help            this help
  /quit            leave (or Ctrl-D)
Ctrl-C stops a generation without leaving.";

async fn repl(
    runtime: &Runtime,
    session: Option<Session>,
    model: Option<String>,
    mode: Mode,
) -> anyhow::Result<()> {
    use rustyline::error::ReadlineError;
    let mut editor = rustyline::DefaultEditor::new()
        .context("cannot set up the terminal for the interactive chat")?;
    let history = runtime.paths().state_dir.join("chat_history.txt");
    let _ = editor.load_history(&history);
    let mut session = session;
    let mut model = model;
    let default_model = "auto".to_owned();
    println!(
        "Baton chat · model {} · mode {mode} · /help for commands, Ctrl-D to leave",
        model.as_deref().unwrap_or(&default_model)
    );
    if let Some(s) = &session {
        println!("Continuing \"{}\"", s.title);
    }
    loop {
        let line = tokio::task::block_in_place(|| editor.readline("› "));
        let line = match line {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e).context("cannot read from the terminal"),
        };
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(text);
        if let Some(command) = text.strip_prefix('/') {
            let (name, rest) = command.split_once(' ').unwrap_or((command, ""));
            let rest = rest.trim();
            match name {
                "quit" | "exit" | "q" => break,
                "help" | "?" => println!("{REPL_HELP}"),
                "new" => {
                    let title = if rest.is_empty() { "New chat" } else { rest };
                    let s = runtime.new_session(title).await?;
                    println!("New session \"{}\"", s.title);
                    session = Some(s);
                }
                "model" if rest.is_empty() => {
                    println!("Model: {}", model.as_deref().unwrap_or(&default_model));
                }
                "model" if rest == "auto" => {
                    model = None;
                    println!("Model: auto (routed per message)");
                }
                "model" => match runtime.engine_for(rest) {
                    Ok(_) => {
                        model = Some(rest.to_owned());
                        println!("Model: {rest}");
                    }
                    Err(e) => eprintln!("error: {e}"),
                },
                "models" => {
                    let models = runtime.store().list_models().await?;
                    if models.is_empty() {
                        println!("No models registered. Fetch the defaults with `make run` or add one with `baton models add PATH`.");
                    }
                    for m in models {
                        println!("  {}  ({})", m.name, m.path);
                    }
                }
                "sessions" => {
                    for s in runtime.store().list_sessions(15).await? {
                        let id = &s.session.id.0;
                        println!(
                            "  {}  {}  ({} messages)",
                            &id[id.len() - 8..],
                            s.session.title,
                            s.message_count
                        );
                    }
                }
                "open" => match runtime.store().find_session(rest).await {
                    Ok(s) => {
                        println!("Continuing \"{}\"", s.title);
                        session = Some(s);
                    }
                    Err(e) => eprintln!("error: {e}"),
                },
                other => eprintln!("Unknown command /{other}; /help lists them."),
            }
            continue;
        }
        let current = match &session {
            Some(s) => s.clone(),
            None => {
                let s = runtime.new_session(&title_from(text)).await?;
                session = Some(s.clone());
                s
            }
        };
        match ask(runtime, &current.id, text, model.clone(), mode, true, None).await {
            Ok(_) => {}
            // The REPL survives every engine failure: say what happened and carry on.
            Err(e) => match e.downcast_ref::<RuntimeError>() {
                Some(RuntimeError::Store(_)) | None => return Err(e),
                Some(_) => eprintln!("\nerror: {e}"),
            },
        }
    }
    if let Some(parent) = history.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = editor.save_history(&history);
    Ok(())
}

/// Reads an answer aloud as it streams (speech starts with the first complete sentence).
fn speaker(voice: baton_tts::Voice) -> anyhow::Result<baton_tts::Reader> {
    let player = std::sync::Arc::new(baton_tts::Player::new()?);
    Ok(baton_tts::Reader::start(voice, player, |e| {
        eprintln!("\x1b[2m[cannot read the answer aloud: {e}]\x1b[0m")
    }))
}

/// `baton chat --voice`: listen, send what was said, read the answer aloud; repeat.
async fn voice_chat(
    runtime: &Runtime,
    session: Option<Session>,
    model: Option<String>,
    mode: Mode,
    turns: usize,
) -> anyhow::Result<()> {
    let choice = runtime.voice().await?;
    eprintln!("\x1b[2m{}\x1b[0m", choice.notice);
    let mut session = session;
    for _turn in (0..).take_while(|t| turns == 0 || *t < turns) {
        let ctrl_c = crate::commands::CtrlC::watch();
        eprintln!("\x1b[2mSpeak now (Ctrl-C leaves)…\x1b[0m");
        let on_voice = |e: baton_runtime::VoiceEvent| {
            if let baton_runtime::VoiceEvent::Partial(text) = e {
                eprint!("\r\x1b[2K\x1b[2m… {text}\x1b[0m");
            }
        };
        let options = baton_runtime::ListenOptions {
            utterances: 1,
            partials: true,
            ..Default::default()
        };
        let heard = runtime.listen(options, &on_voice, ctrl_c.token()).await;
        drop(ctrl_c);
        let Some(said) = heard?.into_iter().next() else {
            eprintln!();
            return Ok(());
        };
        eprintln!("\r\x1b[2K› {}", said.text);
        let current = match &session {
            Some(s) => s.clone(),
            None => {
                let s = runtime.new_session(&title_from(&said.text)).await?;
                session = Some(s.clone());
                s
            }
        };
        let reader = speaker(choice.voice.clone())?;
        let result = ask(
            runtime,
            &current.id,
            &said.text,
            model.clone(),
            mode,
            true,
            Some(&reader),
        )
        .await;
        reader.finish();
        let _ = tokio::task::spawn_blocking(move || reader.wait()).await;
        if let Err(e) = result {
            match e.downcast_ref::<RuntimeError>() {
                Some(RuntimeError::Store(_)) | None => return Err(e),
                Some(_) => eprintln!("\nerror: {e}"),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::title_from;

    #[test]
    fn titles_are_short_and_never_empty() {
        assert_eq!(
            title_from("What is the capital of France?"),
            "What is the capital of France?"
        );
        assert_eq!(title_from("   "), "New chat");
        let long = title_from(&"word ".repeat(40));
        assert!(long.len() <= 64 && long.ends_with('…'), "{long}");
    }
}
