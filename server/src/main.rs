//! The `roomhooks` binary: runs the sidecar until SIGINT or SIGTERM.

use clap::Parser;
use roomhooks_server::{
    Config, Sidecar,
    config::{Cli, LogFormat},
};
use tracing_subscriber::EnvFilter;

/// Dependencies that flood logs at low levels stay at warn unless RUST_LOG says otherwise.
const DEFAULT_FILTER: &str = "info,h2=warn,hyper=warn,hyper_util=warn,tower=warn,tonic=info";

fn main() -> std::process::ExitCode {
    let config = match Config::load(Cli::parse()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("roomhooks: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    if std::env::args().any(|a| a == "--print-config") {
        print!("{}", config.to_toml());
        return std::process::ExitCode::SUCCESS;
    }
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // Logs go to stderr; colours only on a terminal.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match config.log_format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), roomhooks_server::SidecarError> {
    let mut sidecar = Sidecar::start(config).await?;
    tokio::select! {
        result = sidecar.wait() => result?,
        () = shutdown_signal() => {
            tracing::info!("shutting down: draining in-flight calls");
            sidecar.shutdown().await?;
            tracing::info!("stopped");
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!("cannot listen for SIGTERM ({err}); stopping on Ctrl-C only");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
