//! The `roomhooks` binary: runs the sidecar until SIGINT or SIGTERM.

use clap::{Parser, ValueEnum};
use roomhooks_server::{Config, Sidecar, config::LogFormat};
use tracing_subscriber::EnvFilter;

/// Dependencies that flood logs at low levels stay at warn unless RUST_LOG says otherwise.
const DEFAULT_FILTER: &str = "info,h2=warn,hyper=warn,hyper_util=warn,tower=warn,tonic=info";

/// The roomhooks sidecar: runs chat-room hooks on app processes connected over gRPC.
#[derive(Parser, Debug)]
#[command(name = "roomhooks", version, about)]
struct Cli {
    #[command(flatten)]
    config: Config,

    /// The async runtime: `multi-thread` (a worker per core) or `current-thread` (everything on
    /// one thread; less cross-thread wake-up cost on small machines).
    #[arg(
        long,
        env = "ROOMHOOKS_RUNTIME",
        value_enum,
        default_value = "multi-thread"
    )]
    runtime: RuntimeFlavor,

    /// Worker threads of the multi-thread runtime (default: one per core).
    #[arg(long, env = "ROOMHOOKS_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    worker_threads: Option<u16>,
}

/// The flavour of the tokio runtime the sidecar runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum RuntimeFlavor {
    /// A work-stealing pool of worker threads.
    MultiThread,
    /// A single thread.
    CurrentThread,
}

fn main() -> std::process::ExitCode {
    let Cli {
        config,
        runtime,
        worker_threads,
    } = Cli::parse();
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
    let mut builder = match runtime {
        RuntimeFlavor::MultiThread => tokio::runtime::Builder::new_multi_thread(),
        RuntimeFlavor::CurrentThread => {
            if worker_threads.is_some() {
                tracing::warn!("--worker-threads has no effect with --runtime current-thread");
            }
            tokio::runtime::Builder::new_current_thread()
        }
    };
    if let (RuntimeFlavor::MultiThread, Some(workers)) = (runtime, worker_threads) {
        builder.worker_threads(usize::from(workers));
    }
    let runtime = match builder.enable_all().build() {
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
