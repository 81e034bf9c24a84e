//! What can stop a benchmark run.

use std::path::PathBuf;

/// Why the bench (or one of its child processes) stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The sidecar binary is not where it was looked for.
    #[error(
        "the sidecar binary {0} does not exist: run `cargo build --release --bin roomhooks` \
         (`cargo build --bin roomhooks` for a debug bench), or pass --sidecar-bin PATH"
    )]
    SidecarMissing(PathBuf),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A channel could not be opened.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// Where to.
        endpoint: String,
        /// Why not.
        source: tonic::transport::Error,
    },
    /// A call failed with a gRPC status.
    #[error("{what} failed: {} ({:?})", .status.message(), .status.code())]
    Rpc {
        /// The call.
        what: &'static str,
        /// Its status.
        status: tonic::Status,
    },
    /// A call succeeded with an answer the scenario did not expect (the numbers would lie).
    #[error("unexpected answer: {0}")]
    Answer(String),
    /// A child process misbehaved or did not get ready in time.
    #[error("{0}")]
    Child(String),
    /// The SDK stopped an app.
    #[error(transparent)]
    Sdk(#[from] roomhooks_sdk::SdkError),
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
