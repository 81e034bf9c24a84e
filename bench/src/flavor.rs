//! The tokio runtime flavour of a process, as a flag value.

use clap::ValueEnum;

/// Which tokio runtime a process runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Flavor {
    /// A work-stealing pool, one worker per core (tokio's default; the sidecar's on > 2 cores).
    MultiThread,
    /// Everything on one thread.
    CurrentThread,
}

impl Flavor {
    /// What the sidecar's `--runtime auto` (its default) picks on this host.
    pub fn sidecar_default() -> Flavor {
        match std::thread::available_parallelism().map_or(1, usize::from) {
            0..=2 => Flavor::CurrentThread,
            _ => Flavor::MultiThread,
        }
    }

    /// The other flavour.
    pub fn other(self) -> Flavor {
        match self {
            Flavor::MultiThread => Flavor::CurrentThread,
            Flavor::CurrentThread => Flavor::MultiThread,
        }
    }

    /// The flag value, as passed to child processes.
    pub fn as_arg(self) -> &'static str {
        match self {
            Flavor::MultiThread => "multi-thread",
            Flavor::CurrentThread => "current-thread",
        }
    }

    /// Builds a runtime of this flavour with every driver enabled.
    pub fn build(self) -> std::io::Result<tokio::runtime::Runtime> {
        match self {
            Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread(),
            Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        }
        .enable_all()
        .build()
    }
}
