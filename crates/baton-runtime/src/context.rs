//! What the model is given for a session's next answer: the system prompt, snippets from
//! memory, a summary of older turns when the conversation has outgrown the context window,
//! and the most recent turns, within a token budget (`[memory]` in the config).
//!
//! Tokens are estimated from characters ([`CHARS_PER_TOKEN`]); the engine's own fit (which
//! drops the oldest turns) remains the last guard when the estimate is short.

use baton_core::{CancellationToken, ChatMessage, Role, SamplingParams, SessionId};
use baton_store::{Message, MessageSource, TurnSummary};

use crate::memory::{memory_message, CHARS_PER_TOKEN};
use crate::{Runtime, RuntimeError};

/// The first words of the system message that carries a summary.
pub(crate) const SUMMARY_HEADER: &str = "Summary of the earlier conversation";

/// The context of one answer.
pub(crate) struct Prepared {
    /// What the engine is sent.
    pub messages: Vec<ChatMessage>,
    /// The memory snippets among them, numbered.
    pub sources: Vec<MessageSource>,
}

/// Estimated tokens of a text.
fn tokens(text: &str) -> usize {
    text.chars().count().div_ceil(CHARS_PER_TOKEN) + 4
}

/// Where the recent turns start: the newest turns that fit `budget` tokens (at least the
/// last message), moved forward to a user's turn so no answer is kept without its question.
fn recent_start(history: &[Message], budget: usize) -> usize {
    let mut used = 0;
    let mut start = history.len();
    for (i, m) in history.iter().enumerate().rev() {
        let t = tokens(&m.content);
        if used + t > budget && start < history.len() {
            break;
        }
        used += t;
        start = i;
    }
    while start > 0 && start < history.len() - 1 && history[start].role != Role::User {
        start += 1;
    }
    start
}

/// Splits text in two at the line break nearest its middle (or at the middle).
fn split_in_half(text: &str) -> (String, String) {
    let middle = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(0, |(i, _)| i);
    let cut = text[..middle]
        .rfind('\n')
        .filter(|&i| i > middle / 2)
        .map_or(middle, |i| i + 1);
    (text[..cut].to_owned(), text[cut..].to_owned())
}

impl Runtime {
    /// Builds the context for answering `session` with `model` (the model that writes a
    /// summary when one is needed).
    pub(crate) async fn prepare_context(
        &self,
        session: &SessionId,
        model: &str,
        params: &SamplingParams,
        cancel: &CancellationToken,
    ) -> Result<Prepared, RuntimeError> {
        let record = self.store.find_session(&session.0).await?;
        let history: Vec<Message> = self
            .store
            .messages(session)
            .await?
            .into_iter()
            .filter(|m| m.role != Role::System)
            .collect();
        let question = history
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.clone())
            .unwrap_or_default();
        let sources = match self.recall(&record, &question).await {
            Ok(sources) => sources,
            Err(e) => {
                tracing::warn!(error = %e, "memory could not be searched; answering without it");
                Vec::new()
            }
        };
        let mut head = Vec::new();
        let system = self.config.chat.system_prompt.trim();
        if !system.is_empty() {
            head.push(ChatMessage::system(system));
        }
        if !sources.is_empty() {
            head.push(ChatMessage::system(memory_message(&sources)));
        }
        let window = self.config.llm.context_length as usize;
        let summary_budget = self.config.memory.summary_tokens as usize;
        let fixed: usize = head.iter().map(|m| tokens(&m.content)).sum::<usize>()
            + params.max_tokens as usize
            + summary_budget;
        let recent_budget = window.saturating_sub(fixed).max(window / 4);
        let whole: usize = history.iter().map(|m| tokens(&m.content)).sum();
        // Only a conversation that outgrows the window is summarised.
        let start = if whole + fixed - summary_budget <= window {
            0
        } else {
            recent_start(&history, recent_budget)
        };
        let remote = self
            .remotes
            .read()
            .expect("remote lock")
            .contains_key(model);
        let mut summary = None;
        let mut recent = &history[..];
        if start > 0 && !remote {
            // Summarise more than needed (the recent turns then take half their budget), so
            // that the next turns fit without another summary.
            let cut = recent_start(&history, recent_budget / 2).max(start);
            match self
                .summary_through(&record.id, &history[..cut], model, cancel)
                .await
            {
                Ok(s) => {
                    let covered = history.iter().position(|m| m.id > s.through_id);
                    recent = &history[covered.unwrap_or(history.len() - 1)..];
                    summary = Some(s);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "older turns could not be summarised; the oldest are dropped instead");
                }
            }
        }
        let mut messages = head;
        if let Some(s) = summary {
            messages.push(ChatMessage::system(format!(
                "{SUMMARY_HEADER} (older turns, summarised to fit the context window):\n{}",
                s.content
            )));
        }
        messages.extend(
            recent
                .iter()
                .map(|m| ChatMessage::new(m.role, m.content.clone())),
        );
        Ok(Prepared { messages, sources })
    }

    /// A summary covering every message in `older` (all of one session, oldest first):
    /// the stored one when it already does, else a new one written by `model` from the
    /// previous summary and the turns after it, and stored.
    async fn summary_through(
        &self,
        session: &SessionId,
        older: &[Message],
        model: &str,
        cancel: &CancellationToken,
    ) -> Result<TurnSummary, RuntimeError> {
        let last = older.last().map_or(0, |m| m.id);
        let previous = self.store.session_summary(session).await?;
        if let Some(p) = previous.as_ref().filter(|p| p.through_id >= last) {
            return Ok(p.clone());
        }
        let after = previous.as_ref().map_or(0, |p| p.through_id);
        let limit = self.config.memory.summary_tokens as usize;
        // The turns go in pieces that fit the window beside the instructions and the notes
        // written, oldest first. Each piece adds its own notes: earlier notes are not
        // rewritten (a small model rewriting them loses facts), only shortened when together
        // they outgrow the summary's budget.
        let capacity = (self.config.llm.context_length as usize)
            .saturating_sub(limit + 150)
            .max(256)
            * CHARS_PER_TOKEN;
        let mut pieces: Vec<String> = vec![String::new()];
        for m in older.iter().filter(|m| m.id > after) {
            let mut line = format!("{}: {}\n\n", m.role.as_str(), m.content.trim());
            if line.chars().count() > capacity {
                // One turn larger than a piece: its start and end are kept.
                let head: String = line.chars().take(capacity / 2).collect();
                let tail: Vec<char> = line.chars().rev().take(capacity / 2 - 10).collect();
                line = format!("{head} […] {}", tail.into_iter().rev().collect::<String>());
            }
            let current = pieces.last_mut().expect("one piece");
            if !current.is_empty() && current.len() + line.len() > capacity {
                pieces.push(line);
            } else {
                current.push_str(&line);
            }
        }
        let mut notes = previous.map(|p| p.content).unwrap_or_default();
        let mut writer = model.to_owned();
        let words = limit * 3 / 5;
        let mut queue: std::collections::VecDeque<String> =
            pieces.into_iter().filter(|p| !p.is_empty()).collect();
        let mut done = 0;
        while let Some(piece) = queue.pop_front() {
            tracing::debug!(chars = piece.len(), "summarising a piece");
            let result = self
                .ask_for_notes(
                    session,
                    &format!(
                        "Write notes on the turns of the conversation above, for an assistant that will no longer see them: short bullet points, first every fact the user gave (names, places, numbers, dates, preferences), then what was discussed or decided and any open question. At most {words} words. Write only the bullet points."
                    ),
                    &piece,
                    model,
                    cancel,
                )
                .await;
            let (added, by) = match result {
                // The estimate of tokens was short for this model (code, another script):
                // the piece goes again in halves.
                Err(RuntimeError::Engine(baton_core::EngineError::InvalidRequest(e)))
                    if e.contains("context window") && piece.len() > 400 =>
                {
                    let (first, second) = split_in_half(&piece);
                    queue.push_front(second);
                    queue.push_front(first);
                    continue;
                }
                other => other?,
            };
            done += 1;
            notes = format!("{}\n{}", notes.trim(), added.trim())
                .trim()
                .to_owned();
            writer = by;
            if tokens(&notes) > limit {
                let (shorter, by) = self
                    .ask_for_notes(
                        session,
                        &format!(
                            "Shorten the notes on a conversation above to at most {words} words of bullet points. Keep every fact about the user and the people they mention (names, places, numbers, dates); drop repetition and detail of the discussion first. Write only the bullet points."
                        ),
                        &notes,
                        model,
                        cancel,
                    )
                    .await?;
                notes = shorter;
                writer = by;
            }
        }
        tracing::info!(
            through = last,
            model,
            pieces = done,
            "older turns summarised"
        );
        Ok(self
            .store
            .save_session_summary(session, last, &notes, &writer)
            .await?)
    }

    /// Asks `model` to write notes by `instructions` on `text`. Returns them and the model
    /// that wrote them.
    async fn ask_for_notes(
        &self,
        session: &SessionId,
        instructions: &str,
        text: &str,
        model: &str,
        cancel: &CancellationToken,
    ) -> Result<(String, String), RuntimeError> {
        // The text goes first and the instructions last, so that a request inside the
        // conversation ("reply with OK") is read as part of it, not obeyed.
        let messages = vec![
            ChatMessage::system("You write notes on conversations. You never answer them."),
            ChatMessage::user(format!(
                "<conversation>\n{}\n</conversation>\n\n{instructions} Do not reply to the conversation itself.",
                text.trim()
            )),
        ];
        let params = SamplingParams {
            temperature: 0.2,
            max_tokens: self.config.memory.summary_tokens,
            ..SamplingParams::default()
        };
        let response = self
            .call(
                model,
                messages,
                Some(session),
                &params,
                &|_| {},
                cancel.clone(),
                crate::Mode::Single,
                "summary",
            )
            .await?;
        let text = response.content.trim();
        if text.is_empty() {
            return Err(RuntimeError::Model(format!(
                "{model} wrote an empty summary"
            )));
        }
        Ok((text.to_owned(), response.model))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::SessionId;

    fn msg(id: i64, role: Role, chars: usize) -> Message {
        Message {
            id,
            session_id: SessionId("s".into()),
            role,
            content: "x".repeat(chars),
            model: None,
            prompt_tokens: None,
            completion_tokens: None,
            latency_ms: None,
            first_token_ms: None,
            tokens_per_second: None,
            cost_usd: None,
            mode: None,
            rating: None,
            sources: Vec::new(),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn halves_split_at_a_line_near_the_middle() {
        let (a, b) = split_in_half("one line\ntwo line\nthree\nfour");
        assert_eq!(format!("{a}{b}"), "one line\ntwo line\nthree\nfour");
        assert!(a.ends_with('\n') && !a.is_empty() && !b.is_empty());
        let (a, b) = split_in_half("ééééé");
        assert_eq!((a.as_str(), b.as_str()), ("éé", "ééé"));
    }

    #[test]
    fn recent_turns_fit_and_start_with_a_question() {
        // Six turns of about 100 tokens each (300 characters + 4).
        let history: Vec<Message> = (0..6)
            .map(|i| {
                msg(
                    i,
                    if i % 2 == 0 {
                        Role::User
                    } else {
                        Role::Assistant
                    },
                    300,
                )
            })
            .collect();
        assert_eq!(recent_start(&history, 10_000), 0);
        // 250 tokens hold two messages (4 and 5), which start with a question.
        assert_eq!(recent_start(&history, 250), 4);
        // 350 tokens hold three (3, 4, 5), but 3 is an answer: start at 4.
        assert_eq!(recent_start(&history, 350), 4);
        // The last message is kept even when it alone is over the budget.
        assert_eq!(recent_start(&history, 10), 5);
    }
}
