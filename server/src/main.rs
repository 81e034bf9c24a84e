//! The `roomhooks` binary: runs the sidecar until SIGINT or SIGTERM.

use roomhooks_server::{
    Config, Sidecar,
    config::{Cli, LogFormat, RuntimeFlavor},
};
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

/// mimalloc instead of the system allocator: glibc malloc/free was about 40 % of the sidecar's CPU
/// under load; see docs/performance.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Dependencies that flood logs at low levels stay at warn unless RUST_LOG says otherwise.
const DEFAULT_FILTER: &str =
    "info,h2=warn,hyper=warn,hyper_util=warn,tower=warn,tonic=info,fjall=warn,lsm_tree=warn";

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    #[cfg(feature = "otlp")]
    let otlp_endpoint = cli.otlp_endpoint.clone();
    let print_config = cli.print_config;
    let config = match Config::load(cli) {
        Ok(config) => config,
        Err(err) => {
            for problem in err.all() {
                eprintln!("roomhooks: {problem}");
            }
            return std::process::ExitCode::from(2);
        }
    };
    if print_config {
        for warning in &config.warnings {
            eprintln!("roomhooks: warning: {warning}");
        }
        print!("{}", config.to_toml());
        return std::process::ExitCode::SUCCESS;
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let flavor = config.runtime.resolve(cores);
    let mut builder = match flavor {
        RuntimeFlavor::CurrentThread | RuntimeFlavor::Auto => {
            tokio::runtime::Builder::new_current_thread()
        }
        RuntimeFlavor::MultiThread => tokio::runtime::Builder::new_multi_thread(),
    };
    if let (RuntimeFlavor::MultiThread, Some(workers)) = (flavor, config.worker_threads) {
        builder.worker_threads(workers);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("roomhooks: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };

    // Logs go to stderr; colours only on a terminal.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match config.log_format {
        LogFormat::Pretty => fmt
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        LogFormat::Json => fmt
            .json()
            .fmt_fields(roomhooks_server::ops::log_fields::JsonFields)
            .boxed(),
    };
    let subscriber = tracing_subscriber::registry().with(filter).with(fmt);
    #[cfg(feature = "otlp")]
    let _provider = match otlp_endpoint {
        Some(endpoint) => {
            let _entered = runtime.enter();
            match roomhooks_server::ops::otel::layer(&endpoint) {
                Ok((layer, provider)) => {
                    subscriber.with(layer).init();
                    Some(provider)
                }
                Err(err) => {
                    eprintln!("roomhooks: {err}");
                    return std::process::ExitCode::from(2);
                }
            }
        }
        None => {
            subscriber.init();
            None
        }
    };
    #[cfg(not(feature = "otlp"))]
    subscriber.init();

    // Configuration warnings were found before logging was set up: log them now.
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    tracing::info!(cores, runtime = ?flavor, requested = ?config.runtime, "async runtime");
    let outcome = runtime.block_on(run(config));
    #[cfg(feature = "otlp")]
    if let Some(provider) = _provider {
        let _ = provider.shutdown();
    }
    match outcome {
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
