//! `baton serve`: the local OpenAI-compatible API, with the task queue, the memory indexer
//! and the document watcher running beside it; `--show-token` and `--rotate-token` manage
//! its bearer token in the key store.

use baton_api::TokenSource;
use baton_runtime::Runtime;

use super::print_json;

/// Options of `baton serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Port on 127.0.0.1 (0 picks a free one)
    #[arg(long, default_value_t = 8089)]
    pub port: u16,
    /// Use this bearer token instead of the stored one. Prefer the BATON_API_TOKEN
    /// environment variable: a flag shows in the process list to every user of the machine
    #[arg(
        long,
        env = "BATON_API_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Print the stored bearer token (creating it if there is none yet) and exit
    #[arg(long, conflicts_with = "rotate_token")]
    pub show_token: bool,
    /// Replace the stored bearer token with a new one, print it and exit. A running
    /// server refuses the old token within a second, without a restart
    #[arg(long)]
    pub rotate_token: bool,
}

/// The key store the config names, in words.
fn store_name(runtime: &Runtime) -> &'static str {
    if runtime.config().secrets.store == "file" {
        "the encrypted key file"
    } else {
        "the OS keyring"
    }
}

/// `--show-token` or `--rotate-token`: prints the stored token (JSON with `--json`).
pub async fn token(args: &ServeArgs, runtime: &Runtime, json: bool) -> anyhow::Result<()> {
    let store = runtime.key_store();
    let rotate = args.rotate_token;
    let token = tokio::task::spawn_blocking(move || {
        if rotate {
            baton_api::rotate_token(&store)
        } else {
            baton_api::stored_token(&store)
        }
    })
    .await??;
    if args.token.is_some() {
        eprintln!(
            "note: a token is also given (BATON_API_TOKEN or --token); a server started with it uses that one, not the stored token printed here"
        );
    }
    if json {
        return print_json(&serde_json::json!({
            "token": token.expose(),
            "store": store_name(runtime),
            "rotated": rotate,
        }));
    }
    println!("{}", token.expose());
    Ok(())
}

/// Serves the API until Ctrl-C.
pub async fn run(args: ServeArgs, runtime: Runtime) -> anyhow::Result<()> {
    let (source, whence) = match args.token {
        Some(token) => (
            TokenSource::from(token),
            "the one given in BATON_API_TOKEN (or --token)".to_owned(),
        ),
        None => {
            let whence = format!(
                "kept in {}; `baton serve --show-token` prints it, `--rotate-token` replaces it",
                store_name(&runtime)
            );
            (TokenSource::Stored(runtime.key_store()), whence)
        }
    };
    let server = match baton_api::serve(runtime.clone(), args.port, source).await {
        Ok(server) => server,
        Err(e) => {
            runtime.close().await;
            return Err(e.into());
        }
    };
    let api = &runtime.config().api;
    println!(
        "Baton's OpenAI-compatible API is listening on {}",
        server.base_url()
    );
    println!("Bearer token: {whence}");
    println!(
        "Try: curl -s {}/models -H \"Authorization: Bearer $(baton serve --show-token)\"",
        server.base_url()
    );
    println!(
        "Web pages allowed: {} ([api] allowed_origins). Rate limit: {} requests a minute per client, {} at once. Every request is in `baton audit`{}.",
        if api.allowed_origins.is_empty() {
            "none".to_owned()
        } else {
            api.allowed_origins.join(", ")
        },
        api.requests_per_minute,
        api.burst,
        if api.audit_prompts {
            ", prompts included ([api] audit_prompts)"
        } else {
            " (without prompts)"
        }
    );
    // The server keeps memory current: documents re-read when they change, new text
    // embedded as it is stored.
    let _indexer = runtime.spawn_memory_indexer();
    let _watcher = match runtime
        .watch_documents(std::time::Duration::from_millis(500))
        .await
    {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "documents are not watched");
            None
        }
    };
    // The server runs the task queue too (tasks added through /v1/tasks).
    let shutdown = baton_core::CancellationToken::new();
    let worker = {
        let runtime = runtime.clone();
        let shutdown = shutdown.clone();
        let options = baton_runtime::WorkerOptions::new(&runtime);
        tokio::spawn(async move { runtime.run_worker(options, shutdown).await })
    };
    println!("Ctrl-C stops it.");
    tokio::signal::ctrl_c().await?;
    shutdown.cancel();
    if let Ok(Err(e)) = worker.await {
        tracing::warn!(error = %e, "the task worker stopped");
    }
    server.stop().await;
    runtime.close().await;
    Ok(())
}
