//! The reconnect loop: one session after another until shutdown or a refusal for good, with
//! backoff between them, and a word on stderr for processes without a tracing subscriber.

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::App;
use crate::{
    SdkError,
    backoff::Backoff,
    connection::Link,
    session::{self, SessionEnd},
};

impl App {
    /// Runs sessions until `shutdown` or a fatal refusal, publishing the registered instance id
    /// on `registered` while a session is registered.
    pub(super) async fn run_with(
        self,
        link: Result<Link, SdkError>,
        shutdown: CancellationToken,
        registered: watch::Sender<Option<String>>,
    ) -> Result<(), SdkError> {
        let link = match link {
            Ok(link) => link,
            Err(err) => {
                report(&self.options.app_id, &format!("cannot start: {err}"));
                return Err(err);
            }
        };
        let mut backoff = Backoff::new(self.options.reconnect_min, self.options.reconnect_max);
        // Failed attempts since the app was last registered; after a few, say why once even
        // when the process has no tracing subscriber.
        let mut failures = 0u32;
        let mut reported = false;
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            match session::run(&self, &link, &shutdown, &registered).await {
                Ok(SessionEnd::Shutdown) => return Ok(()),
                Ok(SessionEnd::Disconnected { was_registered }) => {
                    if was_registered {
                        backoff.reset();
                        failures = 0;
                    }
                    tracing::info!(app_id = %self.options.app_id, "connection to the sidecar ended; reconnecting");
                }
                Err(SdkError::Refused(status)) if is_fatal(&status) => {
                    tracing::error!(app_id = %self.options.app_id,
                        "the sidecar refused this app: {} ({:?}); fix the registration and restart",
                        status.message(), status.code());
                    report(
                        &self.options.app_id,
                        &format!(
                            "the sidecar refused this app: {} ({:?}); fix the registration and restart",
                            status.message(),
                            status.code()
                        ),
                    );
                    return Err(SdkError::Refused(status));
                }
                Err(err) => {
                    let why = unreachable_because(&err);
                    tracing::warn!(app_id = %self.options.app_id, "cannot reach the sidecar at {}: {why}; retrying", link.uri());
                    failures += 1;
                    if failures >= REPORT_AFTER_FAILURES && !reported {
                        reported = true;
                        report(
                            &self.options.app_id,
                            &format!(
                                "cannot reach the sidecar at {} after {failures} attempts: {why}; still retrying \
                             (is the sidecar running there? set up a tracing subscriber to see every attempt)",
                                link.uri()
                            ),
                        );
                    }
                }
            }
            registered.send_replace(None);
            let delay = backoff.next_delay();
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// Failed connection attempts after which an app with no tracing subscriber says why on stderr.
const REPORT_AFTER_FAILURES: u32 = 3;

/// Says `what` on stderr, for processes that set up no tracing subscriber (where the SDK's
/// warnings would go nowhere).
fn report(app_id: &str, what: &str) {
    if !tracing::dispatcher::has_been_set() {
        eprintln!("roomhooks-sdk: app {app_id:?}: {what}");
    }
}

/// Why a connection attempt failed, with the causes tonic keeps behind "transport error".
fn unreachable_because(err: &SdkError) -> String {
    let mut why = match err {
        // The shared connection's failures arrive as a status; its message is the summary.
        SdkError::Refused(status) => status.message().to_owned(),
        other => other.to_string(),
    };
    let mut source = match err {
        SdkError::Refused(status) => std::error::Error::source(status),
        other => std::error::Error::source(other),
    };
    while let Some(cause) = source {
        let text = cause.to_string();
        if !why.contains(&text) {
            why.push_str(": ");
            why.push_str(&text);
        }
        source = cause.source();
    }
    why
}

/// Refusals that retrying cannot fix.
fn is_fatal(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::InvalidArgument
            | tonic::Code::PermissionDenied
            | tonic::Code::Unauthenticated
            | tonic::Code::Unimplemented
    )
}
