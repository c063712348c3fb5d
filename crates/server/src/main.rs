use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tollgate::{
    AppState, cli,
    config::{Cli, Command, KeysCommand, LogFormat},
    sealing::MasterKey,
    storage::{PoolSettings, Storage},
};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Cli::parse();
    let filter = EnvFilter::try_new(&args.server.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.server.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Cli) -> anyhow::Result<()> {
    // Needs no database.
    if let Some(Command::Keys(KeysCommand::NewMasterKey)) = args.command {
        println!("{}", MasterKey::generate()?);
        return Ok(());
    }
    let settings = args.server.settings()?;
    let serve_settings = args.server.serve_settings();
    let storage = Storage::connect_with(
        args.database.database_url.expose_secret(),
        PoolSettings {
            max_connections: args.database.db_max_connections,
            acquire_timeout: args.database.db_acquire_timeout,
        },
    )
    .await?;
    storage.migrate().await?;

    match args.command {
        None | Some(Command::Serve) => {}
        Some(command) => {
            let state = AppState::load(storage.clone(), settings).await?;
            let result = cli::run(&state, command).await;
            storage.close().await;
            return result;
        }
    }

    if settings.allow_self_assigned_roles {
        tracing::warn!(
            "!!! --allow-self-assigned-roles is ON: anyone can sign up as moderator or admin. \
             Use this for demos only, never in production. !!!"
        );
    }
    let state = AppState::new(storage.clone(), settings).await?;
    #[cfg(unix)]
    state.authz.reload_on_sighup()?;
    match &state.settings.config_file {
        Some(file) => tracing::info!(
            file = %file.display(),
            rules = state.authz.rules().len(),
            "access rules loaded (reloaded on SIGHUP)"
        ),
        None => tracing::info!("no --config file: forward-auth checks are all denied"),
    }
    if let Some(address) = state.settings.metrics_listen {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} (--metrics-listen)"))?;
        tracing::info!(address = %listener.local_addr()?, "metrics at /metrics");
        let metrics = axum::Router::new()
            .route(
                api::wire::paths::METRICS,
                axum::routing::get(tollgate::http::meta::metrics_apart),
            )
            .with_state(state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, metrics).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    let listener = TcpListener::bind(args.server.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.server.bind))?;
    tracing::info!(
        address = %listener.local_addr()?,
        backend = ?storage.backend(),
        max_connections = serve_settings.max_connections,
        "tollgate is serving"
    );
    let mailer = state.mailer.clone();
    tollgate::serve(listener, state, serve_settings, shutdown_signal()).await?;
    // Mail still queued gets the drain time too; what is left then is said, not lost silently.
    if tokio::time::timeout(serve_settings.shutdown_drain, mailer.flush())
        .await
        .is_err()
    {
        tracing::error!(
            unsent = mailer.pending(),
            "stopping with mail still queued: those messages are not sent"
        );
    }
    storage.close().await;
    tracing::info!("tollgate stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
