//! `baton audit`: the local API's audit log, newest first: when, which client, what it
//! asked for, how it was answered. Prompt text appears only when `[api] audit_prompts`
//! was on when the request came.

use baton_runtime::Runtime;
use baton_store::AuditFilter;
use chrono::{DateTime, Local, Utc};

use super::print_json;

/// Options of `baton audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Most requests to print, newest first (0 for all)
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Only requests since then: a time back from now (90s, 30m, 2h, 7d, 2w), a day
    /// (2026-05-01, local time) or a date-time (2026-05-01T14:00:00Z)
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
}

/// The moment `text` names, relative to `now` (see [`AuditArgs::since`]).
fn parse_since(text: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    let text = text.trim();
    let unit = text.char_indices().last().map_or(0, |(i, _)| i);
    if let (Ok(n), Some(per)) = (
        text[..unit].parse::<u32>(),
        match &text[unit..] {
            "s" => Some(1),
            "m" => Some(60),
            "h" => Some(3_600),
            "d" => Some(86_400),
            "w" => Some(604_800),
            _ => None,
        },
    ) {
        return Ok(now - chrono::Duration::seconds(i64::from(n) * per));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        if let Some(t) = day
            .and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(Local).earliest())
        {
            return Ok(t.with_timezone(&Utc));
        }
    }
    anyhow::bail!(
        "`{text}` is not a time: give a time back from now such as 30m, 2h or 7d, a day such as 2026-05-01, or a date-time such as 2026-05-01T14:00:00Z"
    )
}

/// Prints the audit log.
pub async fn run(args: AuditArgs, runtime: &Runtime, json: bool) -> anyhow::Result<()> {
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(s, Utc::now()))
        .transpose()?;
    let calls = runtime
        .store()
        .api_calls(&AuditFilter {
            since,
            limit: args.limit,
        })
        .await?;
    if json {
        return print_json(&calls);
    }
    if calls.is_empty() {
        println!(
            "No API requests recorded{}. `baton serve` records every request it gets.",
            if since.is_some() { " since then" } else { "" }
        );
        return Ok(());
    }
    println!(
        "{:<19} {:<21} {:<7} {:<24} {:>6} {:<14} {:>8}  MODEL",
        "WHEN", "CLIENT", "METHOD", "PATH", "STATUS", "OUTCOME", "MS"
    );
    for c in &calls {
        println!(
            "{:<19} {:<21} {:<7} {:<24} {:>6} {:<14} {:>8}  {}",
            c.at.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S"),
            c.client,
            c.method,
            c.path,
            c.status,
            c.outcome,
            c.duration_ms,
            c.model.as_deref().unwrap_or("-")
        );
        if let Some(prompt) = &c.prompt {
            let line: String = prompt.chars().take(100).collect();
            let more = if prompt.chars().count() > 100 {
                "…"
            } else {
                ""
            };
            println!("    prompt: {}{more}", line.replace('\n', " ⏎ "));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_spans_days_and_date_times() {
        let now = DateTime::parse_from_rfc3339("2026-05-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_since("30m", now).unwrap(),
            now - chrono::Duration::minutes(30)
        );
        assert_eq!(
            parse_since("7d", now).unwrap(),
            now - chrono::Duration::days(7)
        );
        assert_eq!(
            parse_since("2026-05-01T14:00:00Z", now)
                .unwrap()
                .to_rfc3339(),
            "2026-05-01T14:00:00+00:00"
        );
        let day = parse_since("2026-05-01", now).unwrap();
        assert_eq!(
            day.with_timezone(&Local)
                .format("%Y-%m-%d %H:%M")
                .to_string(),
            "2026-05-01 00:00"
        );
        for bad in ["", "m", "soon", "5 minutes", "-3d", "2026-13-01", "3y"] {
            let err = parse_since(bad, now).unwrap_err().to_string();
            assert!(err.contains("30m"), "{bad}: {err}");
        }
    }
}
