//! Fitting a conversation into the context window by dropping its oldest turns.

use baton_core::{ChatMessage, Role};
use std::ops::Range;

/// The oldest turn that may be dropped: the first non-system message (never the last
/// message) together with the non-user messages that follow it (its answers).
pub fn oldest_turn(messages: &[ChatMessage]) -> Option<Range<usize>> {
    let last = messages.len().checked_sub(1)?;
    let start = messages[..last]
        .iter()
        .position(|m| m.role != Role::System)?;
    let mut end = start + 1;
    while end < last && messages[end].role != Role::User {
        end += 1;
    }
    Some(start..end)
}

/// The result of [`fit`].
#[derive(Debug, PartialEq)]
pub struct Fitted<T> {
    /// The messages that remain.
    pub messages: Vec<ChatMessage>,
    /// Turns dropped.
    pub dropped: u32,
    /// What `render` returned for the remaining messages (the tokens).
    pub rendered: T,
    /// Its length in tokens.
    pub tokens: usize,
}

/// Why a conversation cannot be fitted.
#[derive(Debug, PartialEq)]
pub enum FitError<E> {
    /// Even the last message alone (plus system messages) is `tokens` long, which does not
    /// fit a window of `n_ctx`.
    TooLong {
        /// Prompt tokens with all droppable turns dropped.
        tokens: usize,
    },
    /// Rendering failed.
    Render(E),
}

/// Drop the oldest turns until the rendered prompt plus `reserve` tokens fits `n_ctx`.
/// When nothing is left to drop, a prompt that fits without the reserve is accepted (the
/// generation budget shrinks); one that does not fit at all is an error.
pub fn fit<T, E>(
    messages: &[ChatMessage],
    n_ctx: usize,
    reserve: usize,
    mut render: impl FnMut(&[ChatMessage]) -> Result<(T, usize), E>,
) -> Result<Fitted<T>, FitError<E>> {
    let mut messages = messages.to_vec();
    let mut dropped = 0;
    loop {
        let (rendered, tokens) = render(&messages).map_err(FitError::Render)?;
        if tokens + reserve <= n_ctx {
            return Ok(Fitted {
                messages,
                dropped,
                rendered,
                tokens,
            });
        }
        match oldest_turn(&messages) {
            Some(range) => {
                messages.drain(range);
                dropped += 1;
            }
            None if tokens < n_ctx => {
                return Ok(Fitted {
                    messages,
                    dropped,
                    rendered,
                    tokens,
                })
            }
            None => return Err(FitError::TooLong { tokens }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv() -> Vec<ChatMessage> {
        vec![
            ChatMessage::system("sys"),
            ChatMessage::user("u1"),
            ChatMessage::assistant("a1"),
            ChatMessage::user("u2"),
            ChatMessage::assistant("a2"),
            ChatMessage::user("u3"),
        ]
    }

    #[test]
    fn oldest_turn_keeps_system_and_last() {
        assert_eq!(oldest_turn(&conv()), Some(1..3));
        assert_eq!(oldest_turn(&[ChatMessage::user("only")]), None);
        assert_eq!(
            oldest_turn(&[ChatMessage::system("s"), ChatMessage::user("u")]),
            None
        );
        assert_eq!(oldest_turn(&[]), None);
    }

    /// Ten tokens per message.
    fn count(m: &[ChatMessage]) -> Result<((), usize), ()> {
        Ok(((), m.len() * 10))
    }

    #[test]
    fn drops_turns_until_it_fits() {
        let fitted = fit(&conv(), 49, 10, count).unwrap();
        assert_eq!(fitted.dropped, 2);
        assert_eq!(
            fitted.messages,
            vec![ChatMessage::system("sys"), ChatMessage::user("u3")]
        );
        let fitted = fit(&conv(), 1000, 10, count).unwrap();
        assert_eq!(fitted.dropped, 0);
    }

    #[test]
    fn too_long_alone_is_an_error_and_tight_fits_shrink_the_budget() {
        assert_eq!(
            fit(&conv(), 15, 10, count).unwrap_err(),
            FitError::TooLong { tokens: 20 }
        );
        let fitted = fit(&conv(), 25, 10, count).unwrap();
        assert_eq!(fitted.tokens, 20);
    }
}
