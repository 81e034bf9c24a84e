//! The `roomhooks` binary: runs the sidecar until SIGINT or SIGTERM.

use roomhooks_server::{
    Config, Sidecar,
    config::{Cli, LogFormat, RuntimeFlavor},
};
use std::process::ExitCode;

use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

/// mimalloc instead of the system allocator: glibc malloc/free was about 40 % of the sidecar's CPU
/// under load; see docs/performance.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Dependencies that flood logs at low levels stay at warn unless RUST_LOG says otherwise.
const DEFAULT_FILTER: &str =
    "info,h2=warn,hyper=warn,hyper_util=warn,tower=warn,tonic=info,fjall=warn,lsm_tree=warn";

fn main() -> ExitCode {
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
            return ExitCode::from(2);
        }
    };
    if print_config {
        for warning in &config.warnings {
            eprintln!("roomhooks: warning: {warning}");
        }
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let flavor = config.runtime.resolve(cores);
    let runtime = match build_runtime(flavor, config.worker_threads) {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("roomhooks: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let logging = init_logging(
        config.log_format,
        &runtime,
        #[cfg(feature = "otlp")]
        otlp_endpoint,
    );
    let telemetry = match logging {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("roomhooks: {err}");
            return ExitCode::from(2);
        }
    };

    // Configuration warnings were found before logging was set up: log them now.
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    tracing::info!(cores, runtime = ?flavor, requested = ?config.runtime, "async runtime");
    let outcome = runtime.block_on(run(config));
    telemetry.shutdown();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}

/// The tokio runtime of the resolved `flavor`.
fn build_runtime(
    flavor: RuntimeFlavor,
    worker_threads: Option<usize>,
) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match flavor {
        RuntimeFlavor::CurrentThread | RuntimeFlavor::Auto => {
            tokio::runtime::Builder::new_current_thread()
        }
        RuntimeFlavor::MultiThread => tokio::runtime::Builder::new_multi_thread(),
    };
    if let (RuntimeFlavor::MultiThread, Some(workers)) = (flavor, worker_threads) {
        builder.worker_threads(workers);
    }
    builder.enable_all().build()
}

/// What must be flushed at exit: the OpenTelemetry exporter, when one runs.
struct Telemetry {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes the spans still buffered.
    #[cfg_attr(not(feature = "otlp"), allow(clippy::unused_self))] // nothing to flush without it
    fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider {
            let _ = provider.shutdown();
        }
    }
}

/// Logs to stderr (colours only on a terminal; `RUST_LOG` filters, dependencies at warn), and
/// exports spans over OTLP when an endpoint is given.
fn init_logging(
    format: LogFormat,
    runtime: &tokio::runtime::Runtime,
    #[cfg(feature = "otlp")] otlp_endpoint: Option<String>,
) -> Result<Telemetry, String> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
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
    if let Some(endpoint) = otlp_endpoint {
        let _entered = runtime.enter();
        let (layer, provider) = roomhooks_server::ops::otel::layer(&endpoint)?;
        subscriber.with(layer).init();
        return Ok(Telemetry {
            provider: Some(provider),
        });
    }
    let _ = runtime;
    subscriber.init();
    Ok(Telemetry {
        #[cfg(feature = "otlp")]
        provider: None,
    })
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
